import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { signed } from '../helpers/fixtures.js';
import { uniqueDomain } from '../db/helpers.js';
import { ADMIN_PASSWORD, ensureAdmin } from './helpers.js';

/**
 * The whole ticket story in a real browser (Debian's chromium through playwright-core) against
 * the real server on a TCP port: the administrator sets up an organization, a user and its APIs
 * and creates a system ticket; the user creates a ticket in the portal, uses it, revokes it.
 * Screenshots of every page go to test-artifacts/screenshots/.
 */
const CHROMIUM = '/usr/bin/chromium';
const SHOTS = join('test-artifacts', 'screenshots');
const missing = !existsSync(CHROMIUM);
const skip = missing
  ? `${CHROMIUM} is not installed (apt-get install chromium); browser test skipped`
  : false;

let t: TestApp;
let base: string;
let context: BrowserContext;
let page: Page;
let profile: string;

before(async () => {
  if (missing) return;
  t = await startTestApp();
  await ensureAdmin(t.database);
  base = await t.app.listen({ host: '127.0.0.1', port: 0 });
  profile = mkdtempSync(join(tmpdir(), 'onecloud-chromium-'));
  mkdirSync(SHOTS, { recursive: true });
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
    viewport: { width: 1200, height: 800 },
    baseURL: base,
  });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(10_000);
});

after(async () => {
  if (missing) return;
  await context?.close();
  await t?.close();
  rmSync(profile, { recursive: true, force: true });
});

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function api(path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  const r = await fetch(`${base}${path}`, { headers: { accept: 'application/json', ...headers } });
  return { status: r.status, body: await r.text() };
}

test(
  'administrator and user: organization, user, APIs, system ticket, user ticket used and revoked',
  { skip },
  async () => {
    const domain = uniqueDomain();
    const userId = 'aki.huolman';
    const password = 'user password 1';
    const errors: string[] = [];
    page.on('console', (m) => {
      // Error statuses are checked by URL below; anything else (a CSP violation, a script error) fails.
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
    });
    page.on('response', (r) => {
      const path = new URL(r.url()).pathname;
      const expected = path === '/favicon.ico' || (path === '/admin/login' && r.status() === 401);
      if (r.status() >= 400 && !expected) errors.push(`${r.status()} ${path}`);
    });
    page.on('pageerror', (e) => errors.push(e.message));

    // --- Administrator ----------------------------------------------------------------------
    await page.goto('/admin');
    assert.match(page.url(), /\/admin\/login$/);
    await shot('01-admin-login');
    await page.getByLabel('User name').fill('admin');
    await page.getByLabel('Password').fill('wrong password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByText('Wrong user name or password.').waitFor();
    await shot('02-admin-login-refused');
    await page.getByLabel('Password').fill(ADMIN_PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'Organizations' }).waitFor();
    await shot('03-admin-organizations-empty');

    await page.getByLabel('Domain').fill(domain);
    await page.getByLabel('Name').fill('Example <Sales> & Co');
    await page.getByRole('button', { name: 'Create organization' }).click();
    await page.getByText('Organization created.').waitFor();
    assert.ok(page.url().endsWith(`/admin/organizations/${domain}?done=org-created`));
    await shot('04-admin-organization-users');

    await page.getByLabel('User id').fill(userId);
    await page.getByLabel('First name').fill('Aki');
    await page.getByLabel('Last name').fill('Huolman');
    await page.getByLabel('Email').fill(`aki@${domain}`);
    await page.getByLabel(/^Password/).fill(password);
    await page.getByRole('button', { name: 'Create user' }).click();
    await page.getByText('User created.').waitFor();
    await shot('05-admin-user');

    // A superuser for the portal's admin view.
    await page.getByRole('link', { name: 'Users', exact: true }).click();
    await page.getByLabel('User id').fill('boss');
    await page.getByLabel(/^Password/).fill(password);
    await page.getByLabel('Role').selectOption('SUPERUSER');
    await page.getByRole('button', { name: 'Create user' }).click();
    await page.getByText('User created.').waitFor();

    // A user group with Aki in it.
    await page.getByRole('link', { name: 'User groups' }).click();
    await page.getByLabel('Name').fill('Support');
    await page.getByRole('button', { name: 'Create group' }).click();
    await page.getByText('User group created.').waitFor();
    await page.locator('label', { hasText: userId }).locator('input').check();
    await page.getByRole('button', { name: 'Save members' }).click();
    await page.getByText('Members saved.').waitFor();
    await page.locator('input[name="api.CONTACT"]').check();
    await page.getByRole('button', { name: 'Save group-level authorization' }).click();
    await page.getByText('External API authorization saved').waitFor();
    await shot('06-admin-user-group');
    await page.getByRole('link', { name: 'User groups' }).click();
    await shot('07-admin-user-groups');

    // Organization level: User info for everyone.
    await page.getByRole('link', { name: 'External API authorization' }).click();
    await page.locator('input[name="api.USER_INFO"]').check();
    await page.getByRole('button', { name: 'Save organization-level authorization' }).click();
    await page.getByText('External API authorization saved').waitFor();
    await shot('08-admin-external-api');
    await page.getByRole('link', { name: 'Users', exact: true }).click();
    await page.getByRole('link', { name: userId }).first().click();
    await page.getByText('Allowed now (all levels)').waitFor();
    await shot('09-admin-user-effective-apis');

    // System ticket: token and secret shown once.
    await page.getByRole('link', { name: 'System tickets' }).click();
    await page.getByLabel('Name').fill('provisioning');
    await page.locator('input[name="scope.ADMIN_ORGANIZATIONS"]').check();
    await page.locator(`input[name="org.${domain}"]`).check();
    await page.getByRole('button', { name: 'Create system ticket' }).click();
    await page.getByText('they are shown only this once').waitFor();
    const sysToken = await page.locator('#ticket-token').inputValue();
    const sysSecret = await page.locator('#ticket-secret').inputValue();
    assert.match(sysToken, /^\d+\.[A-Za-z0-9_-]{43}$/);
    assert.ok(sysSecret.length >= 32);
    // The copy buttons appear when the script runs, and copy.
    const copy = page.locator('button[data-copy="ticket-token"]');
    assert.ok(await copy.isVisible(), 'copy button shown by the script');
    await copy.click();
    await page.getByRole('button', { name: 'Copied' }).waitFor();
    await shot('10-admin-system-ticket-created');
    const signedPath = `/api/admin/organizations/${domain}`;
    const adminCall = await api(
      signedPath,
      signed({ token: sysToken, secret: sysSecret }, 'GET', signedPath),
    );
    assert.equal(adminCall.status, 200, adminCall.body);
    await page.getByRole('link', { name: 'System tickets' }).click();
    assert.equal(await page.locator('#ticket-token').count(), 0, 'the token is not shown again');
    assert.doesNotMatch(await page.content(), new RegExp(sysToken.split('.')[1]!));
    await shot('11-admin-system-tickets');

    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('heading', { name: 'System administrator' }).waitFor();

    // --- User portal ------------------------------------------------------------------------
    await page.goto('/portal');
    assert.match(page.url(), /\/portal\/login/);
    await shot('12-portal-login');
    await page.getByLabel('User (user@domain)').fill(`${userId}@${domain}`);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'Welcome, Aki Huolman' }).waitFor();
    await shot('13-portal-home');

    await page.getByRole('link', { name: 'Tickets', exact: true }).click();
    // Only the APIs allowed to me are offered.
    assert.equal(await page.locator('input[name="api.USER_INFO"]').count(), 1);
    assert.equal(await page.locator('input[name="api.CONTACT"]').count(), 1);
    assert.equal(await page.locator('input[name="api.SMS"]').count(), 0);
    await shot('14-portal-tickets-empty');
    await page.getByLabel('Name').fill('my CRM');
    await page.locator('input[name="api.USER_INFO"]').check();
    await page.getByRole('button', { name: 'Create ticket' }).click();
    await page.getByText('it is shown only this once').waitFor();
    const token = await page.locator('#ticket-token').inputValue();
    assert.match(token, /^\d+\.[A-Za-z0-9_-]{43}$/);
    assert.match(await page.locator('#ticket-expires').innerText(), /^\d{4}-\d\d-\d\d \d\d:\d\d UTC$/);
    await shot('15-portal-ticket-created');

    const shortlist = `/api/device/info/v1/shortlist/${domain}/${userId}`;
    const used = await api(shortlist, { authorization: `Bearer ${token}` });
    assert.equal(used.status, 200, used.body);
    assert.ok(Array.isArray(JSON.parse(used.body)));

    await page.getByRole('link', { name: 'Tickets', exact: true }).click();
    const row = page.locator('tr', { hasText: 'my CRM' });
    await row.waitFor();
    assert.doesNotMatch(await row.innerText(), /never/, 'last use is shown');
    await shot('16-portal-tickets');
    await row.getByRole('button', { name: 'Revoke' }).click();
    await page.getByText('Ticket revoked.').waitFor();
    assert.equal(await page.locator('tr', { hasText: 'my CRM' }).count(), 0);
    await shot('17-portal-ticket-revoked');
    const refused = await api(shortlist, { authorization: `Bearer ${token}` });
    assert.equal(refused.status, 401, refused.body);

    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('heading', { name: 'Log in to the portal' }).waitFor();

    // --- A superuser's admin view -----------------------------------------------------------
    await page.getByLabel('User (user@domain)').fill(`boss@${domain}`);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('link', { name: 'Admin view' }).first().click();
    await page.getByRole('heading', { name: /Example <Sales> & Co/ }).waitFor();
    await shot('18-portal-admin-view-users');
    await page.getByRole('link', { name: 'External API authorization' }).click();
    await shot('19-portal-admin-view-external-api');

    assert.deepEqual(errors, [], 'no errors in the browser console (CSP violations included)');
  },
);

test(
  'without JavaScript the pages still work: log in, create a ticket, read the token (copy buttons stay hidden)',
  { skip },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'onecloud-chromium-nojs-'));
    const noJs = await chromium.launchPersistentContext(dir, {
      executablePath: CHROMIUM,
      headless: true,
      javaScriptEnabled: false,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-quic',
      ],
      viewport: { width: 1200, height: 800 },
      baseURL: base,
    });
    try {
      const p = noJs.pages()[0] ?? (await noJs.newPage());
      p.setDefaultTimeout(10_000);
      const domain = uniqueDomain();
      await p.goto('/admin/login');
      await p.getByLabel('User name').fill('admin');
      await p.getByLabel('Password').fill(ADMIN_PASSWORD);
      await p.getByRole('button', { name: 'Log in' }).click();
      await p.getByLabel('Domain').fill(domain);
      await p.getByLabel('Name').fill('No script Ltd');
      await p.getByRole('button', { name: 'Create organization' }).click();
      await p.getByText('Organization created.').waitFor();
      await p.getByRole('link', { name: 'System tickets' }).click();
      await p.locator('input[name="scope.ADMIN"]').check();
      await p.getByRole('button', { name: 'Create system ticket' }).click();
      await p.getByText('they are shown only this once').waitFor();
      assert.match(await p.locator('#ticket-token').inputValue(), /^\d+\.[A-Za-z0-9_-]{43}$/);
      assert.equal(
        await p.locator('button[data-copy="ticket-token"]').isVisible(),
        false,
        'no copy button without JS',
      );
      await p.screenshot({
        path: join(SHOTS, '20-admin-system-ticket-without-javascript.png'),
        fullPage: true,
      });
      await p.getByRole('button', { name: 'Log out' }).click();
      await p.getByRole('heading', { name: 'System administrator' }).waitFor();
    } finally {
      await noJs.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
