import { pino, type Logger, type DestinationStream } from 'pino';
import type { LogLevel } from '../config.js';

/** Query parameters whose values never reach a log line. */
const SECRET_QUERY = /([?&](?:t|token|secret|password)=)[^&#]*/gi;

export function redactQuery(url: string): string {
  return url.replace(SECRET_QUERY, '$1[redacted]');
}

interface RawReqLike {
  method?: string;
  url?: string;
  originalUrl?: string;
  ip?: string;
  socket?: { remoteAddress?: string };
  headers?: Record<string, unknown>;
}

export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers.cookie',
          'req.headers["x-csrf-token"]',
          '*.password',
          '*.secret',
          '*.token',
          '*.signingSecret',
        ],
        censor: '[redacted]',
      },
      serializers: {
        req(req: RawReqLike) {
          return {
            method: req.method,
            url: redactQuery(req.url ?? ''),
            remoteAddress: req.ip ?? req.socket?.remoteAddress,
          };
        },
      },
    },
    destination,
  );
}
