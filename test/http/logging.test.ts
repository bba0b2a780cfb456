import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger, scrubSecrets } from '../../src/http/logging.js';

test('secrets are scrubbed by field name, at any case and a few levels deep; nothing else is copied', () => {
  const clean = { method: 'GET', nested: { count: 3, list: [1, 2] } };
  assert.equal(scrubSecrets(clean), clean, 'nothing to hide: the same object');
  const dirty = {
    user: 'alice',
    Password: 'p4ss',
    body: { secret: 's3', inner: { token: '12.abc', signingSecret: 'x' } },
    headers: { Authorization: 'Bearer 1.x', cookie: 'onecloud_session=abc' },
  };
  const out = scrubSecrets(dirty);
  assert.deepEqual(out, {
    user: 'alice',
    Password: '[redacted]',
    body: { secret: '[redacted]', inner: { token: '[redacted]', signingSecret: '[redacted]' } },
    headers: { Authorization: '[redacted]', cookie: '[redacted]' },
  });
  assert.equal(dirty.Password, 'p4ss', 'the logged object itself is left alone');
  const err = Object.assign(new Error('boom'), { password: 'kept for the serializer' });
  assert.equal(scrubSecrets({ err }).err, err, 'objects that are not plain go to their serializers');
});

test('secrets inside arrays are scrubbed too (a bulk body, a list of devices)', () => {
  const bulk = { users: [{ id: 'a', password: 'one' }, { id: 'b' }, 'x', [{ token: 't' }]] };
  assert.deepEqual(scrubSecrets(bulk), {
    users: [{ id: 'a', password: '[redacted]' }, { id: 'b' }, 'x', [{ token: '[redacted]' }]],
  });
  assert.equal(bulk.users[0] !== undefined && (bulk.users[0] as { password: string }).password, 'one');
  const plain = [{ id: 'a' }, 2];
  assert.equal(scrubSecrets(plain), plain, 'nothing to hide in an array: the same array');
});

test('the logger writes scrubbed lines', () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const log = createLogger('info', sink);
  log.info({ account: { sipPassword: 'hunter2hunter2', user: 'bob' } }, 'device created');
  assert.equal(lines.length, 1);
  assert.doesNotMatch(lines[0]!, /hunter2/);
  assert.match(lines[0]!, /"user":"bob"/);
});
