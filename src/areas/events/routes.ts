import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { AppDeps } from '../../app.js';
import { AppError, ForbiddenError, UnauthorizedError, ValidationError } from '../../errors.js';
import { DomainUserParams, errorResponses } from '../../http/schemas.js';
import { EventRepository, type StoredEvent } from '../../events/repository.js';
import { eventFilter, resolveUserViewer } from '../../events/visibility.js';
import { EventGapError } from '../../events/hub.js';

export const EventSchema = Type.Object({
  seq: Type.Integer(),
  type: Type.String(),
  time: Type.String({ format: 'date-time' }),
  data: Type.Unknown(),
});

const EventsQuery = Type.Object({
  since: Type.Optional(Type.Integer({ minimum: 0, description: 'Return events after this seq' })),
  types: Type.Optional(
    Type.String({
      pattern: '^[a-z0-9_.*-]+(,[a-z0-9_.*-]+)*$',
      maxLength: 500,
      description: 'comma-separated event types; `call.*` matches a family',
    }),
  ),
  timeout: Type.Optional(
    Type.Integer({ minimum: 0, maximum: 60, default: 30, description: 'seconds to wait' }),
  ),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
});

export const HEARTBEAT_MS = 15_000;

function view(e: StoredEvent) {
  return { seq: e.seq, type: e.type, time: new Date(e.time).toISOString(), data: e.data };
}

/**
 * The SSE frame of an event, built once per event however many streams carry it: the hub hands
 * every live subscriber the same event object, so a fan-out to 1,000 streams serializes once.
 */
const frames = new WeakMap<StoredEvent, string>();
function sseFrame(e: StoredEvent): string {
  let frame = frames.get(e);
  if (frame === undefined) {
    frame = `id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(view(e))}\n\n`;
    frames.set(e, frame);
  }
  return frame;
}

/**
 * The event channel (spec §5): long-poll in JSON/XML, or Server-Sent Events with
 * `Accept: text/event-stream`. Events after `since` (or `Last-Event-ID`) that this ticket may see.
 */
export async function eventRoutes(app: FastifyInstance, { deps }: { deps: AppDeps }): Promise<void> {
  app.get(
    '/api/events/v1/:domain/:user',
    {
      schema: {
        summary: 'Subscribe to my events: long-poll, or Server-Sent Events',
        description:
          'Answers at once with the events after `since`, or waits up to `timeout` s for the first. ' +
          'With `Accept: text/event-stream` streams them (`id:` = seq; resumes from `Last-Event-ID`; a heartbeat comment every 15 s). ' +
          'A `since` older than the retained log is 409 with `oldestSeq`: resync, then resume.',
        tags: ['EVENT_CHANNEL'],
        params: DomainUserParams,
        querystring: EventsQuery,
        response: {
          200: Type.Object({ events: Type.Array(EventSchema), next: Type.Integer() }),
          ...errorResponses,
        },
      },
      config: { access: { kind: 'user', scope: 'EVENT_CHANNEL' }, sse: true, xmlRoot: 'events' },
    },
    async (request, reply) => {
      const p = request.principal;
      if (p.kind !== 'user-ticket') throw new ForbiddenError();
      const q = request.query as { since?: number; types?: string; timeout?: number; limit?: number };
      const viewer = await resolveUserViewer(
        new EventRepository(deps.database.db),
        p.user.organizationId,
        p.user.id,
      );
      const filter = eventFilter(viewer, q.types?.split(','));
      const leave = app.events.enter(p.ticketId, p.user.organizationId);
      if (!leave) {
        throw new AppError(
          429,
          'too many open event streams for this ticket or organization; close one first',
          {
            headers: { 'retry-after': '5' },
          },
        );
      }
      try {
        // An access change read between this request's authentication and `enter` above would
        // have missed this stream: re-check it then.
        await app.events.recheckIfChangedSince(
          p.ticketId,
          p.user.organizationId,
          performance.now() - reply.elapsedTime,
        );
        if (app.events.wasWithdrawn(p.ticketId)) throw new UnauthorizedError('ticket revoked');
        if (request.wantsEventStream)
          return await stream(request, reply, p.ticketId, p.user.organizationId, filter, q.since, leave);
        const abort = new AbortController();
        request.raw.on('close', () => abort.abort());
        const events = await app.events.hub
          .waitForEvents({
            organizationId: p.user.organizationId,
            ...(q.since !== undefined ? { since: q.since } : {}),
            filter,
            timeoutMs: (q.timeout ?? 30) * 1000,
            limit: q.limit ?? 100,
            signal: abort.signal,
            key: `ticket:${p.ticketId}`,
          })
          .catch(gapTo409);
        if (app.events.wasWithdrawn(p.ticketId)) throw new UnauthorizedError('ticket revoked');
        const next = events.length > 0 ? events[events.length - 1]!.seq : (q.since ?? app.events.hub.cursor);
        return { events: events.map(view), next };
      } finally {
        if (!request.wantsEventStream) leave();
      }
    },
  );

  async function stream(
    request: FastifyRequest,
    reply: FastifyReply,
    ticketId: number,
    organizationId: number,
    filter: (e: StoredEvent) => boolean,
    since: number | undefined,
    leave: () => void,
  ): Promise<FastifyReply> {
    const header = request.headers['last-event-id'];
    let resume = since;
    if (typeof header === 'string' && header !== '') {
      if (!/^\d{1,15}$/.test(header)) {
        throw new ValidationError([
          { field: 'header.last-event-id', message: 'must be the seq of an event (digits)' },
        ]);
      }
      resume = Number(header);
    }
    const res = reply.raw;
    let ended = false;
    // Events and a close can arrive while the hub reads the backlog, before the headers are out:
    // they wait here until the stream is open.
    let opened = false;
    let pending = '';
    let pendingClose: string | null | undefined;
    // Set once the stream is open; `end` may run before that.
    const timers: { heartbeat?: NodeJS.Timeout } = {};
    const end = (finalEvent?: string) => {
      if (ended) return;
      if (!opened) {
        pendingClose = finalEvent ?? null;
        return;
      }
      ended = true;
      if (timers.heartbeat) clearInterval(timers.heartbeat);
      leave();
      if (finalEvent && !res.destroyed) res.write(finalEvent);
      res.end();
    };
    // Subscribing first: a gap is still an ordinary 409 answer.
    const sub = await app.events.hub
      .subscribe({
        organizationId,
        ...(resume !== undefined ? { since: resume } : {}),
        filter,
        key: `ticket:${ticketId}`,
        onEvents: (events) => {
          if (ended) return;
          let text = '';
          for (const e of events) text += sseFrame(e);
          if (!opened) {
            pending += text;
            return undefined;
          }
          // Backpressure: the hub waits for the socket to drain before the next batch, and closes
          // a subscriber whose queue grows past its limit ('slow-consumer'); the client resumes
          // from its Last-Event-ID with nothing lost.
          if (!res.write(text)) return new Promise<void>((resolve) => res.once('drain', resolve));
          return undefined;
        },
        onClose: (reason) => {
          if (reason === 'ticket-revoked') {
            end(
              `event: ticket.revoked\ndata: ${JSON.stringify({ ticketId, reason: 'ticket revoked or access withdrawn' })}\n\n`,
            );
          } else if (reason !== 'closed') {
            end(`event: stream.closed\ndata: ${JSON.stringify({ reason })}\n\n`);
          } else {
            end();
          }
        },
      })
      .catch((err: unknown) => {
        leave();
        return gapTo409(err);
      });
    reply.hijack();
    res.useChunkedEncodingByDefault = false;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      // no chunked framing: each event is one plain socket write; the body ends when the stream does
      'x-accel-buffering': 'no',
    });
    res.write(`retry: 2000\n: stream open at seq ${resume ?? sub.lastSeq}\n\n${pending}`);
    pending = '';
    opened = true;
    if (pendingClose !== undefined) {
      end(pendingClose ?? undefined);
      return reply;
    }
    timers.heartbeat = setInterval(() => {
      if (!ended) res.write(': heartbeat\n\n');
    }, HEARTBEAT_MS);
    request.raw.on('close', () => {
      sub.close('closed');
      end();
    });
    return reply;
  }
}

function gapTo409(err: unknown): never {
  if (err instanceof EventGapError) {
    throw new AppError(409, err.message, { extra: { oldestSeq: err.oldestSeq } });
  }
  throw err;
}
