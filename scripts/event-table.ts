// Prints the event catalog as the Markdown table the README carries (test/events/catalog.test.ts
// checks that it does).
import { eventTable } from '../src/events/catalog.js';

console.log(eventTable());
