// Worker entry of the embedded database: PGlite and its socket server run in this thread, so the
// main thread's event loop (HTTP, the supervisor's pings) never waits on embedded SQL.
import { serveEmbeddedDatabase } from '../src/db/embedded-thread.ts';

serveEmbeddedDatabase();
