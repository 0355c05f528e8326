import { differentialSuite } from './differential-suite.ts';

differentialSuite('differential model vs impl (first half of the seeds)', 'diff-a-', 100, 250);
