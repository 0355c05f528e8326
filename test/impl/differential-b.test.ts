import { differentialSuite } from './differential-suite.ts';

differentialSuite('differential model vs impl (second half of the seeds)', 'diff-b-', 100, 250);
