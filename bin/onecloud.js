#!/usr/bin/env node
// Runs the TypeScript CLI through tsx, so `npm install` is all a checkout needs.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
