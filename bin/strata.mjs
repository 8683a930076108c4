#!/usr/bin/env node
// Entry of the `strata` command. Strata ships TypeScript sources and runs them through tsx's
// loader so `npm start` works from a fresh clone with no build step.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli.ts');
