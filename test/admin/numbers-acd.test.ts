/**
 * Numbers and ACD/attendant groups agree: a group's function number is the number the numbers
 * API shows assigned to it (and inbound routing finds), whichever API set it; a group has one
 * at most; and both APIs refuse (409, naming the number and its owner) to take a number someone
 * else has, unless the numbers API is asked to move it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { forEachDialect, uniqueDomain } from '../db/helpers.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { systemTicket } from '../helpers/fixtures.js';
import { NumberRepository } from '../../src/areas/numbers/repository.js';
import { admin, type Page, type Ticket } from './helpers.js';

interface GroupView {
  id: number;
  number: string | null;
}
interface NumberView {
  number: string;
  user: string | null;
  acdGroup: number | null;
}

forEachDialect('admin API: numbers and ACD groups agree', (ctx) => {
  let t: TestApp;
  let sys: Ticket;
  let d: string;
  const N = (i: number) => `+4684440000${i}`;
  const path = (i: number) => `/api/admin/numbers/${d}/${encodeURIComponent(N(i))}`;

  before(async () => {
    t = await startTestApp({ database: ctx.handle });
    sys = await systemTicket(ctx.handle, t.config, ['ADMIN']);
    d = uniqueDomain('nacd');
    await admin(t, sys, 'POST', '/api/admin/organizations', { domain: d, name: 'N' });
    for (const u of ['ann', 'bob']) await admin(t, sys, 'POST', `/api/admin/users/${d}`, { userId: u });
    assert.equal(
      (await admin(t, sys, 'POST', `/api/admin/numbers/${d}`, { number: N(0), count: 8 })).status,
      201,
    );
  });
  after(async () => t.close());

  const group = async (id: number) =>
    (await admin<GroupView>(t, sys, 'GET', `/api/admin/acd-attendant-group/${d}/${id}`)).json;
  const num = async (i: number) => (await admin<NumberView>(t, sys, 'GET', path(i))).json;

  /** Every group's number is exactly the one number the numbers table gives it, and routing agrees. */
  async function consistent() {
    const groups = await admin<Page<GroupView>>(t, sys, 'GET', `/api/admin/acd-attendant-group/${d}`);
    const numbers = await admin<Page<NumberView>>(t, sys, 'GET', `/api/admin/numbers/${d}`);
    for (const g of groups.json.items) {
      const owned = numbers.json.items.filter((n) => n.acdGroup === g.id).map((n) => n.number);
      assert.deepEqual(owned, g.number === null ? [] : [g.number], `group ${g.id} owns ${owned.join(', ')}`);
      if (g.number !== null) {
        const owner = await new NumberRepository(ctx.handle.db).findOwner(g.number);
        assert.equal(owner?.acdGroupId, g.id, 'inbound routing sends the number to the group');
      }
    }
  }

  test('a number given to a group on the numbers API is the group’s number; a later group PUT replaces it', async () => {
    const g = (await admin<GroupView>(t, sys, 'POST', `/api/admin/acd-attendant-group/${d}`, { name: 'Q1' }))
      .json;
    const assigned = await admin<NumberView>(t, sys, 'PUT', path(0), { acdGroup: g.id });
    assert.equal(assigned.status, 200, assigned.body);
    assert.equal((await group(g.id)).number, N(0), 'the group shows the number the numbers API gave it');
    await consistent();

    const replaced = await admin<GroupView>(t, sys, 'PUT', `/api/admin/acd-attendant-group/${d}/${g.id}`, {
      number: N(1),
    });
    assert.equal(replaced.status, 200, replaced.body);
    assert.equal(replaced.json.number, N(1));
    assert.equal((await num(0)).acdGroup, null, 'the previous function number is released');
    assert.equal((await num(1)).acdGroup, g.id);
    await consistent();

    // Giving the group another number on the numbers API replaces it the same way.
    assert.equal((await admin(t, sys, 'PUT', path(2), { acdGroup: g.id })).status, 200);
    assert.equal((await group(g.id)).number, N(2));
    assert.equal((await num(1)).acdGroup, null);
    await consistent();

    // Releasing on either side shows on the other.
    assert.equal((await admin(t, sys, 'PUT', path(2), { acdGroup: null })).status, 200);
    assert.equal((await group(g.id)).number, null);
    await admin(t, sys, 'PUT', `/api/admin/acd-attendant-group/${d}/${g.id}`, { number: N(2) });
    assert.equal((await num(2)).acdGroup, g.id);
    await admin(t, sys, 'PUT', `/api/admin/acd-attendant-group/${d}/${g.id}`, { number: null });
    assert.equal((await num(2)).acdGroup, null);
    await consistent();
  });

  test('taking a number someone else has is 409 naming it and its owner on both APIs, unless moved', async () => {
    const g = (await admin<GroupView>(t, sys, 'POST', `/api/admin/acd-attendant-group/${d}`, { name: 'Q2' }))
      .json;
    const h = (await admin<GroupView>(t, sys, 'POST', `/api/admin/acd-attendant-group/${d}`, { name: 'Q3' }))
      .json;
    assert.equal((await admin(t, sys, 'PUT', path(3), { user: 'ann' })).status, 200);

    // Numbers API: from a user to another user, or to a group.
    const toBob = await admin(t, sys, 'PUT', path(3), { user: 'bob' });
    assert.equal(toBob.status, 409, toBob.body);
    assert.match(toBob.body, new RegExp(`${N(3).replace('+', '\\+')}.*user ann@`));
    assert.match(String(toBob.json.validationResult), /"move": true/);
    const toGroup = await admin(t, sys, 'PUT', path(3), { acdGroup: g.id });
    assert.equal(toGroup.status, 409);
    assert.equal((await num(3)).user, `ann@${d}`, 'still ann’s');
    // ACD API: the same number is refused the same way.
    const acdTake = await admin(t, sys, 'PUT', `/api/admin/acd-attendant-group/${d}/${g.id}`, {
      number: N(3),
    });
    assert.equal(acdTake.status, 409);
    assert.match(acdTake.body, /user ann@/);

    // An explicit move takes it.
    const moved = await admin<NumberView>(t, sys, 'PUT', path(3), { user: 'bob', move: true });
    assert.equal(moved.status, 200, moved.body);
    assert.equal(moved.json.user, `bob@${d}`);
    const audit = await admin<Page<{ action: string; data: Record<string, unknown> }>>(
      t,
      sys,
      'GET',
      `/api/admin/audit/${d}?limit=500`,
    );
    const last = audit.json.items.filter((a) => a.action === 'number.assigned').pop();
    assert.deepEqual(last?.data, { number: N(3), owner: `bob@${d}`, movedFrom: `user ann@${d}` });

    // Between groups: the group's number on either API is 409 naming the group, until moved.
    assert.equal((await admin(t, sys, 'PUT', path(4), { acdGroup: g.id })).status, 200);
    const steal = await admin(t, sys, 'PUT', `/api/admin/acd-attendant-group/${d}/${h.id}`, { number: N(4) });
    assert.equal(steal.status, 409);
    assert.match(steal.body, new RegExp(`group ${g.id} \\(Q2\\)`));
    const stealN = await admin(t, sys, 'PUT', path(4), { acdGroup: h.id });
    assert.equal(stealN.status, 409);
    assert.match(stealN.body, new RegExp(`group ${g.id}`));
    const created = await admin(t, sys, 'POST', `/api/admin/acd-attendant-group/${d}`, {
      name: 'Q4',
      number: N(4),
    });
    assert.equal(created.status, 409);
    assert.equal((await admin(t, sys, 'PUT', path(4), { acdGroup: h.id, move: true })).status, 200);
    assert.equal((await group(g.id)).number, null);
    assert.equal((await group(h.id)).number, N(4));
    // A user's number given to a group by a move, and the same owner again is no conflict.
    assert.equal((await admin(t, sys, 'PUT', path(4), { acdGroup: h.id })).status, 200);
    assert.equal((await admin(t, sys, 'PUT', path(3), { acdGroup: g.id, move: true })).status, 200);
    assert.equal((await num(3)).user, null);
    assert.equal((await group(g.id)).number, N(3));
    await consistent();

    // Deleting a group releases its number; deleting a user releases theirs.
    assert.equal((await admin(t, sys, 'DELETE', `/api/admin/acd-attendant-group/${d}/${h.id}`)).status, 200);
    assert.equal((await num(4)).acdGroup, null);
    // Removing a number from the organization clears the group's number too.
    assert.equal((await admin(t, sys, 'DELETE', path(3))).status, 200);
    assert.equal((await group(g.id)).number, null);
    await consistent();
  });
});
