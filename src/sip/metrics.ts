/**
 * The SIP core's figures on the server's Prometheus endpoint (`/metrics`): calls, registrations and
 * transactions in progress, and overload control (the receive queue's delay, the share of new work
 * refused, the 503s sent). Read from the SIP server's stats when scraped; nothing is counted twice.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { SipServer } from './server.js';

export function registerSipMetrics(registry: Registry, stats: () => SipServer['stats']): void {
  const registers = [registry];
  new Gauge({
    name: 'onecloud_sip_active_calls',
    help: 'Calls through the B2BUA not yet ended',
    registers,
    collect() {
      this.set(stats().activeCalls);
    },
  });
  new Gauge({
    name: 'onecloud_sip_registrations',
    help: 'Registered contacts (bindings) of devices',
    registers,
    collect() {
      this.set(stats().bindings);
    },
  });
  new Gauge({
    name: 'onecloud_sip_transactions',
    help: 'SIP transactions alive (including those only absorbing retransmissions), by kind',
    labelNames: ['kind'] as const,
    registers,
    collect() {
      const { clients, servers } = stats().transactions;
      this.set({ kind: 'client' }, clients);
      this.set({ kind: 'server' }, servers);
    },
  });
  new Gauge({
    name: 'onecloud_sip_receive_queue_delay_seconds',
    help: 'How long a received UDP datagram last waited before it was read (overload control probe)',
    registers,
    collect() {
      const o = stats().overload;
      if (o) this.set(o.delayMs / 1000);
    },
  });
  new Gauge({
    name: 'onecloud_sip_overload_shed_ratio',
    help: 'Share of new calls and registrations refused with 503 now (overload control)',
    registers,
    collect() {
      const o = stats().overload;
      if (o) this.set(o.shedShare);
    },
  });
  // Counters follow the server's own totals: each scrape adds what they grew by since the last.
  const follow = (name: string, help: string, read: () => number | undefined): void => {
    let seen = 0;
    new Counter({
      name,
      help,
      registers,
      collect() {
        const now = read();
        if (now === undefined || now <= seen) return;
        this.inc(now - seen);
        seen = now;
      },
    });
  };
  follow(
    'onecloud_sip_overload_shed_total',
    'New calls and registrations refused with 503 by overload control',
    () => stats().overload?.shed,
  );
  follow(
    'onecloud_sip_overload_episodes_total',
    'Times overload control started refusing new work',
    () => stats().overload?.episodes,
  );
}
