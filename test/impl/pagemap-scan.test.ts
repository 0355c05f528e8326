/** The model's PAGEMAP_SCAN, pagemap, clear_refs and map_files scenarios, on the implementation. */
import { ImplKernel } from '../../impl/kernel.ts';
import { pagemapScenarios } from '../model/pagemap-scenarios.ts';

pagemapScenarios('impl', () => new ImplKernel());
