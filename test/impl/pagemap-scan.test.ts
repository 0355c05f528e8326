/** The model's PAGEMAP_SCAN, pagemap, clear_refs and map_files scenarios, on the implementation. */
import { DEFAULT_CONFIG } from '../../kernel-api/config.ts';
import { ImplKernel } from '../../impl/kernel.ts';
import { pagemapScenarios } from '../model/pagemap-scenarios.ts';

pagemapScenarios('impl', (config) => new ImplKernel({ ...DEFAULT_CONFIG, ...config }));
