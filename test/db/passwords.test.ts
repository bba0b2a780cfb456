import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { digestHa1, hashPassword, needsRehash, verifyPassword } from '../../src/security/passwords.js';

test('scrypt hashes are self-describing, salted and verify', async () => {
  const h = await hashPassword('sekret åäö');
  assert.match(h, /^scrypt\$16384\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
  assert.notEqual(await hashPassword('sekret åäö'), h);
  assert.equal(await verifyPassword('sekret åäö', h), true);
  assert.equal(await verifyPassword('sekret', h), false);
  assert.equal(needsRehash(h), false);
});

test('other parameters are read from the hash; malformed hashes never match', async () => {
  const weak = await hashPassword('pw', { N: 1024, r: 8, p: 1 });
  assert.ok(weak.startsWith('scrypt$1024$8$1$'));
  assert.equal(await verifyPassword('pw', weak), true);
  assert.equal(needsRehash(weak), true);
  for (const bad of [
    '',
    'plain',
    'scrypt$3$8$1$AAAA$AAAA',
    'scrypt$1048576000$8$1$AAAA$AAAAAAAAAAAAAAAAAAAAAA==',
    'bcrypt$x',
  ]) {
    assert.equal(await verifyPassword('pw', bad), false, bad);
  }
  assert.equal(await verifyPassword('pw', null), false);
});

test('digest HA1 for MD5 and SHA-256', () => {
  const md5 = createHash('md5').update('alice:example.com:pw').digest('hex');
  assert.equal(digestHa1('alice', 'example.com', 'pw', 'MD5'), md5);
  assert.equal(digestHa1('alice', 'example.com', 'pw', 'SHA-256').length, 64);
  // RFC 2617 example: HA1 of Mufasa:testrealm@host.com:Circle Of Life
  assert.equal(
    digestHa1('Mufasa', 'testrealm@host.com', 'Circle Of Life', 'MD5'),
    '939e7578ed9e3c518a452acee763bce9',
  );
});
