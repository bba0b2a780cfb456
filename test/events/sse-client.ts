/** A small Server-Sent Events reader over fetch (the eventsource package needs Node 22). */
export interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

export interface SseConnection {
  status: number;
  events: SseEvent[];
  comments: string[];
  /** Resolves when `predicate` holds for the events received so far (or rejects at timeout). */
  until(predicate: (events: SseEvent[]) => boolean, timeoutMs?: number): Promise<void>;
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
  close(): void;
}

export async function openSse(url: string, headers: Record<string, string> = {}): Promise<SseConnection> {
  const abort = new AbortController();
  const res = await fetch(url, {
    headers: { accept: 'text/event-stream', ...headers },
    signal: abort.signal,
  });
  const events: SseEvent[] = [];
  const comments: string[] = [];
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const w of [...waiters]) w();
  };
  let endedResolve!: () => void;
  const ended = new Promise<void>((r) => (endedResolve = r));
  if (res.status === 200 && res.body) {
    void (async () => {
      const decoder = new TextDecoder();
      let buffer = '';
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buffer += decoder.decode(chunk, { stream: true });
          let cut: number;
          while ((cut = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            const ev: SseEvent = { event: 'message', data: '' };
            let isEvent = false;
            for (const line of block.split('\n')) {
              if (line.startsWith(':')) comments.push(line.slice(1).trim());
              else if (line.startsWith('id: ')) {
                ev.id = line.slice(4);
                isEvent = true;
              } else if (line.startsWith('event: ')) {
                ev.event = line.slice(7);
                isEvent = true;
              } else if (line.startsWith('data: ')) {
                ev.data += line.slice(6);
                isEvent = true;
              }
            }
            if (isEvent) events.push(ev);
          }
          notify();
        }
      } catch {
        // aborted by close()
      }
      endedResolve();
      notify();
    })();
  } else {
    endedResolve();
  }
  return {
    status: res.status,
    events,
    comments,
    ended,
    close: () => abort.abort(),
    until: (predicate, timeoutMs = 10_000) =>
      new Promise<void>((resolve, reject) => {
        if (predicate(events)) return resolve();
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`SSE condition not met in ${timeoutMs} ms (${events.length} events)`));
        }, timeoutMs);
        const check = () => {
          if (predicate(events)) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve();
          }
        };
        waiters.add(check);
      }),
  };
}
