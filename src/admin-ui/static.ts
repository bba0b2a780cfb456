import { createHash } from 'node:crypto';

/**
 * The web interface's only static files: one style sheet and one small script for the copy
 * buttons (the pages work without it: the buttons stay hidden and the text can be selected).
 * Kept as strings so the server needs no file layout at run time.
 */
export const STYLE_CSS = `
:root { --fg:#1d2330; --muted:#5b6475; --line:#d9dee7; --bg:#f5f7fa; --card:#fff; --accent:#1f5fbf;
  --accent-fg:#fff; --ok:#1d7a46; --ok-bg:#e7f5ec; --err:#a42323; --err-bg:#fbeaea; --warn-bg:#fff6dc; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:var(--bg); }
header.top { background:#17233b; color:#fff; }
header.top .bar { max-width:1080px; margin:0 auto; padding:10px 20px; display:flex; align-items:center; gap:24px; }
header.top .brand { font-weight:700; letter-spacing:.02em; color:#fff; text-decoration:none; }
header.top nav { display:flex; gap:16px; flex:1; flex-wrap:wrap; }
header.top nav a { color:#c9d6ee; text-decoration:none; padding:4px 0; border-bottom:2px solid transparent; }
header.top nav a.active, header.top nav a:hover { color:#fff; border-bottom-color:#7fa8ff; }
header.top .who { color:#c9d6ee; font-size:14px; display:flex; align-items:center; gap:10px; }
header.top .who form { margin:0; }
header.top .who button { background:transparent; color:#fff; border:1px solid #51617f; padding:3px 10px; }
main { max-width:1080px; margin:0 auto; padding:20px; }
h1 { font-size:24px; margin:8px 0 16px; }
h2 { font-size:18px; margin:0 0 12px; }
h1 .muted { font-size:16px; font-weight:400; margin-left:6px; }
.crumbs { color:var(--muted); font-size:14px; margin-bottom:4px; }
.crumbs a { color:var(--muted); }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:16px 18px; margin-bottom:18px; }
.grid2 { display:grid; grid-template-columns: 1fr 1fr; gap:18px; }
@media (max-width: 800px) { .grid2 { grid-template-columns: 1fr; } }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:7px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-size:13px; color:var(--muted); font-weight:600; }
td.actions { text-align:right; white-space:nowrap; }
td form { display:inline; margin:0; }
a { color:var(--accent); }
label { display:block; font-weight:600; font-size:14px; margin:10px 0 4px; }
input[type=text], input[type=password], input[type=number], select {
  width:100%; max-width:420px; padding:7px 9px; border:1px solid #b9c1cf; border-radius:5px; font:inherit; background:#fff; }
input:focus, select:focus, button:focus { outline:2px solid #7fa8ff; outline-offset:1px; }
fieldset { border:1px solid var(--line); border-radius:6px; padding:8px 12px 10px; margin:10px 0; }
legend { font-weight:600; font-size:14px; padding:0 4px; }
.checks { display:grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap:4px 14px; }
.checks label { font-weight:400; margin:3px 0; display:grid; grid-template-columns: 20px 1fr; align-items:baseline; }
.checks code { grid-column:2; color:var(--muted); font-size:11px; overflow-wrap:anywhere; }
button, .button { background:var(--accent); color:var(--accent-fg); border:0; border-radius:5px; padding:7px 14px;
  font:inherit; cursor:pointer; text-decoration:none; display:inline-block; }
button.secondary { background:#e8edf5; color:var(--fg); border:1px solid #c4ccda; }
button.danger { background:#fff; color:var(--err); border:1px solid #e2b2b2; padding:4px 10px; }
.actions-row { margin-top:14px; display:flex; gap:10px; align-items:center; }
.flash { padding:10px 14px; border-radius:6px; margin-bottom:16px; }
.flash.ok { background:var(--ok-bg); color:var(--ok); border:1px solid #b9dfc7; }
.flash.error { background:var(--err-bg); color:var(--err); border:1px solid #efc2c2; }
.secret { background:var(--warn-bg); border:1px solid #ecd58c; }
.secret .value { display:flex; gap:8px; align-items:center; margin:4px 0 12px; }
.secret input { max-width:none; font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size:13px; flex:1; }
.muted { color:var(--muted); }
.pill { display:inline-block; font-size:12px; padding:1px 7px; border-radius:10px; background:#e8edf5; color:#33405a; margin:1px 2px 1px 0; }
.pill.active { background:var(--ok-bg); color:var(--ok); }
.pill.revoked, .pill.expired { background:var(--err-bg); color:var(--err); }
.pill.super { background:#efe5fb; color:#5b2a9a; }
.login { max-width:380px; margin:60px auto; }
.login h1 { text-align:center; }
.pager { margin-top:10px; }
[hidden] { display:none !important; }
h2.spaced { margin-top:18px; }
.tabs { display:flex; gap:4px; border-bottom:1px solid var(--line); margin:0 0 16px; flex-wrap:wrap; }
.tabs a { padding:8px 14px; text-decoration:none; color:var(--fg); border:1px solid transparent; border-bottom:0;
  border-radius:6px 6px 0 0; }
.tabs a.active { background:var(--card); border-color:var(--line); margin-bottom:-1px; font-weight:600; }
.tabs a:hover { background:#eaf0fa; }
`;

/** Copy buttons: `<button data-copy="input-id" hidden>`; shown only when this script runs. */
export const COPY_JS = `'use strict';
document.addEventListener('DOMContentLoaded', function () {
  document.querySelectorAll('button[data-copy]').forEach(function (button) {
    button.hidden = false;
    button.addEventListener('click', function () {
      var field = document.getElementById(button.getAttribute('data-copy'));
      if (!field) return;
      var done = function () {
        var label = button.textContent;
        button.textContent = 'Copied';
        setTimeout(function () { button.textContent = label; }, 1500);
      };
      field.select();
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(done, function () {
          if (document.execCommand('copy')) done();
        });
      } else if (document.execCommand('copy')) {
        done();
      }
    });
  });
});
`;

const etag = (s: string) => `"${createHash('sha256').update(s).digest('base64url').slice(0, 16)}"`;
export const STYLE_ETAG = etag(STYLE_CSS);
export const COPY_ETAG = etag(COPY_JS);
