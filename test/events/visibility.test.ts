import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventHub } from '../../src/events/hub.js';
import type { StoredEvent } from '../../src/events/repository.js';
import { eventFilter, isVisible, matchesTypes, type Viewer } from '../../src/events/visibility.js';
import { forEachDialect } from '../db/helpers.js';
import { appendEvents, newOrg } from './helpers.js';

const ev = (p: Partial<StoredEvent>): StoredEvent => ({
  seq: 1,
  organizationId: 1,
  type: 'x.y',
  time: 0,
  userId: null,
  groupId: null,
  data: {},
  ...p,
});

const alice: Viewer = {
  kind: 'user',
  organizationId: 1,
  userId: 10,
  groupIds: [100],
  supervisedGroupIds: [200],
  watchedUserIds: [12],
};

test('visibility rule: self, agent groups, supervised groups, watched line state, nothing else', () => {
  assert.ok(isVisible(ev({ userId: 10, type: 'device.created' }), alice));
  assert.ok(!isVisible(ev({ userId: 10, organizationId: 2 }), alice), 'other organization');
  assert.ok(!isVisible(ev({ userId: 11, type: 'ticket.created' }), alice), 'another user');
  assert.ok(!isVisible(ev({ type: 'organization.created' }), alice), 'organization-wide');
  assert.ok(isVisible(ev({ groupId: 100, type: 'queue.statistics' }), alice), 'own agent group');
  assert.ok(!isVisible(ev({ groupId: 100, userId: 11, type: 'agent.login' }), alice), 'another agent');
  assert.ok(isVisible(ev({ groupId: 200, userId: 11, type: 'agent.login' }), alice), 'supervised');
  assert.ok(!isVisible(ev({ groupId: 300 }), alice));
  assert.ok(isVisible(ev({ userId: 12, type: 'call.early' }), alice), 'watched line state');
  assert.ok(isVisible(ev({ userId: 12, type: 'availability.changed' }), alice));
  assert.ok(!isVisible(ev({ userId: 12, type: 'ticket.created' }), alice), 'watched, not line state');
  const sys: Viewer = { kind: 'system', organizations: [1, 3] };
  assert.ok(isVisible(ev({ organizationId: 3 }), sys));
  assert.ok(!isVisible(ev({ organizationId: 2 }), sys));
  assert.ok(!isVisible(ev({ organizationId: null }), sys));
  assert.ok(isVisible(ev({ organizationId: null }), { kind: 'system', organizations: null }));
  assert.ok(matchesTypes('call.early', ['call.*']));
  assert.ok(matchesTypes('call.early', ['call.']));
  assert.ok(!matchesTypes('call.early', ['call.confirmed']));
  assert.ok(matchesTypes('anything', []));
});

forEachDialect('event visibility through the hub', (t) => {
  test('one user never sees another user’s events', async () => {
    const { db } = t.handle;
    const org = await newOrg(db);
    const hub = new EventHub({ db, pollIntervalMs: 0 });
    await hub.start();
    const since = hub.cursor;
    const viewer = (userId: number): Viewer => ({
      kind: 'user',
      organizationId: org.id,
      userId,
      groupIds: [],
      supervisedGroupIds: [],
      watchedUserIds: [],
    });
    await appendEvents(db, 200, (i) => ({
      organizationId: org.id,
      type: i % 3 === 0 ? 'call.early' : 'device.created',
      userId: i % 2 === 0 ? 1 : 2,
    }));
    for (const u of [1, 2]) {
      const got = await hub.waitForEvents({
        organizationId: org.id,
        since,
        filter: eventFilter(viewer(u)),
        timeoutMs: 2000,
        limit: 1000,
      });
      assert.equal(got.length, 100);
      assert.ok(got.every((e) => e.userId === u));
      const calls = await hub.waitForEvents({
        organizationId: org.id,
        since,
        filter: eventFilter(viewer(u), ['call.*']),
        timeoutMs: 2000,
        limit: 1000,
      });
      assert.ok(calls.length > 0 && calls.every((e) => e.userId === u && e.type === 'call.early'));
    }
    await hub.stop();
  });
});
