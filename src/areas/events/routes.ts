import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { AppDeps } from '../../app.js';
import { AppError, ForbiddenError, UnauthorizedError, ValidationError } from '../../errors.js';
import { DomainUserParams, errorResponses } from '../../http/schemas.js';
import type { StoredEvent } from '../../events/repository.js';
import { eventFilter } from '../../events/visibility.js';
import { EventGapError, type CloseReason } from '../../events/hub.js';
import { describeWithdrawal, type WithdrawReason } from '../../events/channel.js';
import { eventTable } from '../../events/catalog.js';

export const EventSchema = Type.Object({
  seq: Type.Integer(),
  type: Type.String(),
  time: Type.String({ format: 'date-time' }),
  data: Type.Unknown(),
});

const EventsQuery = Type.Object({
  since: Type.Optional(
    Type.Integer({
      minimum: 0,
      maximum: Number.MAX_SAFE_INTEGER,
      description: 'Return events after this seq',
    }),
  ),
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
export async function eventRoutes(app: FastifyInstance, _opts: { deps: AppDeps }): Promise<void> {
  app.get(
    '/api/events/v1/:domain/:user',
    {
      schema: {
        summary: 'Subscribe to my events: long-poll, or Server-Sent Events',
        description:
          'Answers at once with the events after `since`, or waits up to `timeout` s for the first. ' +
          'With `Accept: text/event-stream` streams them (`id:` = seq; resumes from `Last-Event-ID`; a heartbeat comment every 15 s, ONECLOUD_EVENT_HEARTBEAT_SECONDS). ' +
          'The server ends a stream with a last event: `ticket.revoked` or `ticket.expired` (get a new ticket), or `stream.closed` with a `reason`: ' +
          '`access-changed` (the groups you see changed), `slow-consumer` (read too slowly), `gap`; reconnect with `Last-Event-ID` and nothing is lost. ' +
          'A long-poll answers at once with the events before such a change; a revoked or expired ticket answers 401. ' +
          'A `since` older than the retained log is 409 with `oldestSeq`: resync, then resume. ' +
          'Concurrent streams and long-polls are limited per ticket and per organization (429 with Retry-After).\n\n' +
          'Event types (`about` decides who sees one: a user its own, agents and supervisors their groups, system tickets everything of their organizations):\n\n' +
          eventTable(),
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
      // The slot is this handler's until an open stream takes it over: every other path, errors
      // included (a bad Last-Event-ID, a withdrawn ticket, a database error), releases it here.
      let handedOver = false;
      try {
        const access = await app.events.admit(p.ticketId, p.user);
        const filter = eventFilter(access.viewer, q.types?.split(','));
        if (request.wantsEventStream) {
          return await stream(request, reply, {
            ticketId: p.ticketId,
            organizationId: p.user.organizationId,
            filter,
            stopAt: access.stopAt,
            since: q.since,
            leave,
            takeOver: () => {
              handedOver = true;
            },
          });
        }
        const abort = new AbortController();
        const onGone = () => abort.abort();
        request.raw.on('close', onGone);
        // A client that left during the awaits above is not waited for.
        if (request.raw.destroyed) abort.abort();
        let events: StoredEvent[];
        try {
          events = await app.events.hub
            .waitForEvents({
              organizationId: p.user.organizationId,
              ...(q.since !== undefined ? { since: q.since } : {}),
              filter,
              stopAt: access.stopAt,
              timeoutMs: (q.timeout ?? 30) * 1000,
              limit: q.limit ?? 100,
              signal: abort.signal,
              key: `ticket:${p.ticketId}`,
            })
            .catch(gapTo409);
        } finally {
          request.raw.off('close', onGone);
        }
        const withdrawn = app.events.withdrawal(p.ticketId);
        if (withdrawn) throw new UnauthorizedError(describeWithdrawal(withdrawn));
        const next = events.length > 0 ? events[events.length - 1]!.seq : (q.since ?? app.events.hub.cursor);
        return { events: events.map(view), next };
      } finally {
        if (!handedOver) leave();
      }
    },
  );

  interface StreamOptions {
    ticketId: number;
    organizationId: number;
    filter: (e: StoredEvent) => boolean;
    stopAt: (e: StoredEvent) => CloseReason | undefined;
    since: number | undefined;
    /** Releases the stream's slot; the open stream calls it when it ends. */
    leave: () => void;
    /** Called once the subscription exists: from then on the stream owns the slot. */
    takeOver: () => void;
  }

  async function stream(
    request: FastifyRequest,
    reply: FastifyReply,
    o: StreamOptions,
  ): Promise<FastifyReply> {
    const { ticketId } = o;
    const header = request.headers['last-event-id'];
    let resume = o.since;
    if (typeof header === 'string' && header !== '') {
      if (!/^\d{1,15}$/.test(header)) {
        throw new ValidationError([
          { field: 'header.last-event-id', message: 'must be the seq of an event (digits)' },
        ]);
      }
      resume = Number(header);
    }
    const res = reply.raw;
    // 'pending' until the headers are out: events and a close that arrive while the hub reads the
    // backlog wait here until then.
    let state: 'pending' | 'open' | 'ended' = 'pending';
    let pending = '';
    let pendingClose: string | null | undefined;
    const timers: { heartbeat?: NodeJS.Timeout } = {};
    const finish = (finalEvent?: string) => {
      state = 'ended';
      if (timers.heartbeat) clearInterval(timers.heartbeat);
      o.leave();
      if (finalEvent && !res.destroyed) res.write(finalEvent);
      res.end();
    };
    const end = (finalEvent?: string) => {
      if (state === 'ended') return;
      if (state === 'pending') {
        pendingClose ??= finalEvent ?? null;
        return;
      }
      finish(finalEvent);
    };
    // Subscribing first: a gap is still an ordinary 409 answer.
    const sub = await app.events.hub
      .subscribe({
        organizationId: o.organizationId,
        ...(resume !== undefined ? { since: resume } : {}),
        filter: o.filter,
        stopAt: o.stopAt,
        key: `ticket:${ticketId}`,
        onEvents: (events) => {
          if (state === 'ended') return;
          let text = '';
          for (const e of events) text += sseFrame(e);
          if (state === 'pending') {
            pending += text;
            return undefined;
          }
          // Backpressure: the hub waits for the socket to drain before the next batch, and closes
          // a subscriber whose queue grows past its limit ('slow-consumer'); the client resumes
          // from its Last-Event-ID with nothing lost.
          if (!res.write(text)) return new Promise<void>((resolve) => res.once('drain', resolve));
          return undefined;
        },
        onClose: (reason) => end(closingFrame(reason, ticketId)),
      })
      .catch(gapTo409);
    // Withdrawn between admission and the subscription: an ordinary 401 (the handler releases).
    const withdrawn = app.events.withdrawal(ticketId);
    if (withdrawn) {
      sub.close('closed');
      throw new UnauthorizedError(describeWithdrawal(withdrawn));
    }
    o.takeOver();
    reply.hijack();
    // A client that left during the awaits above: its 'close' has passed, nothing would end this.
    if (request.raw.destroyed || res.destroyed) {
      state = 'ended';
      sub.close('closed');
      o.leave();
      app.events.abandonedStreams += 1;
      return reply;
    }
    request.raw.on('close', () => {
      sub.close('closed');
      end();
    });
    res.useChunkedEncodingByDefault = false;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      // no chunked framing: each event is one plain socket write; the body ends when the stream does
      'x-accel-buffering': 'no',
    });
    res.write(`retry: 2000\n: stream open at seq ${resume ?? sub.lastSeq}\n\n${pending}`);
    pending = '';
    state = 'open';
    if (pendingClose !== undefined) {
      finish(pendingClose ?? undefined);
      return reply;
    }
    timers.heartbeat = setInterval(() => {
      if (state === 'open') res.write(': heartbeat\n\n');
    }, app.events.heartbeatMs);
    timers.heartbeat.unref();
    return reply;
  }
}

/**
 * The last frame of a stream the server ends: `ticket.revoked` / `ticket.expired` (the ticket is
 * no longer valid), else `stream.closed` with the reason (`access-changed`, `slow-consumer`,
 * `gap`, ...): resume from the last `id:` received.
 */
function closingFrame(reason: CloseReason, ticketId: number): string | undefined {
  if (reason === 'closed') return undefined;
  if (reason === 'ticket-revoked' || reason === 'ticket-expired') {
    const withdrawn: WithdrawReason = reason === 'ticket-expired' ? 'ticket-expired' : 'ticket-revoked';
    const type = withdrawn === 'ticket-expired' ? 'ticket.expired' : 'ticket.revoked';
    return `event: ${type}\ndata: ${JSON.stringify({ ticketId, reason: describeWithdrawal(withdrawn) })}\n\n`;
  }
  return `event: stream.closed\ndata: ${JSON.stringify({ reason })}\n\n`;
}

function gapTo409(err: unknown): never {
  if (err instanceof EventGapError) {
    throw new AppError(409, err.message, { extra: { oldestSeq: err.oldestSeq } });
  }
  throw err;
}
