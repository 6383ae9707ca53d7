// A real OpenID provider for the portal's SSO tests: oidc-provider with one static
// confidential client, PKCE required, a `groups` claim and a login form that a browser
// (Playwright) fills in. Test use only: accounts, client and cookie keys come from the
// JSON file named on the command line, keys and grants live in memory.
//
//   node tests/oidc/provider.js CONFIG.json
//
// CONFIG: {"issuer": "http://127.0.0.1:PORT", "port": PORT,
//          "client": {"client_id", "client_secret", "redirect_uris": [...],
//                     "post_logout_redirect_uris": [...]},
//          "accounts": {"alice": {"password", "name", "email", "groups": [...]}}}
//
// Accounts are read from the file at every sign-in, so a test can move a user to
// other groups between two logins. It prints "ready ISSUER" on stdout once it listens.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { parse } from 'node:querystring';

import Provider from 'oidc-provider';

const configPath = process.argv[2];
const config = JSON.parse(readFileSync(configPath, 'utf8'));
const { issuer, port, client } = config;
const accounts = () => JSON.parse(readFileSync(configPath, 'utf8')).accounts;
const SCOPES = ['openid', 'profile', 'email', 'groups'];
const CLAIMS = {
  openid: ['sub'],
  profile: ['name', 'preferred_username'],
  email: ['email', 'email_verified'],
  groups: ['groups'],
};

const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 })
  .privateKey.export({ format: 'jwk' });

const provider = new Provider(issuer, {
  clients: [{
    client_id: client.client_id,
    client_secret: client.client_secret,
    redirect_uris: client.redirect_uris,
    post_logout_redirect_uris: client.post_logout_redirect_uris || [],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [{ ...signingKey, kid: 'test-rsa-1', use: 'sig', alg: 'RS256' }] },
  pkce: { required: () => true },
  scopes: SCOPES,
  claims: CLAIMS,
  // The groups go into the ID token itself, as most enterprise IdPs can be told to do.
  conformIdTokenClaims: false,
  cookies: { keys: [randomBytes(32).toString('hex')] },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: { enabled: true, logoutSource },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (ctx, id) => {
    const account = accounts()[id];
    if (!account) return undefined;
    return {
      accountId: id,
      claims: async () => ({
        sub: id,
        preferred_username: id,
        name: account.name || id,
        email: account.email,
        email_verified: true,
        groups: account.groups || [],
      }),
    };
  },
  // A first-party client: no consent screen, every supported scope and claim granted.
  loadExistingGrant: async (ctx) => {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope(SCOPES.join(' '));
    grant.addOIDCClaims(Object.values(CLAIMS).flat());
    await grant.save();
    return grant;
  },
});

function escape(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title>
<style>body{font-family:sans-serif;max-width:360px;margin:3rem auto}label,input,button{display:block;width:100%;margin:.4rem 0}</style>
</head><body><h1>${escape(title)}</h1>${body}</body></html>`;
}

async function logoutSource(ctx, form) {
  ctx.body = page('Sign out of the test IdP', `${form}
<button type="submit" form="op.logoutForm" value="yes" name="logout" id="idp-logout">Yes, sign me out</button>
<button type="submit" form="op.logoutForm">No, stay signed in</button>`);
}

function loginForm(uid, error) {
  return page('Test IdP sign-in', `
${error ? `<p id="idp-error" role="alert">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}">
  <label for="idp-login">User</label><input id="idp-login" name="login" autocomplete="username">
  <label for="idp-password">Password</label><input id="idp-password" name="password" type="password">
  <button type="submit" id="idp-submit">Sign in</button>
</form>`);
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return parse(Buffer.concat(chunks).toString('utf8'));
}

async function interaction(req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid || details.prompt.name !== 'login') {
    res.writeHead(400, { 'content-type': 'text/plain' });
    res.end(`unexpected prompt ${details.prompt.name}`);
    return;
  }
  if (req.method === 'POST') {
    const { login, password } = await readBody(req);
    const account = accounts()[login];
    if (account && account.password === password) {
      await provider.interactionFinished(req, res, { login: { accountId: login } }, {
        mergeWithLastSubmission: false,
      });
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(loginForm(uid, 'Wrong user or password.'));
    return;
  }
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  res.end(loginForm(uid));
}

const handle = provider.callback();
const server = http.createServer((req, res) => {
  if (req.url === '/favicon.ico') { // browsers ask; a 404 would be a console error
    res.writeHead(204);
    res.end();
    return;
  }
  const match = /^\/interaction\/([A-Za-z0-9_-]+)$/.exec(new URL(req.url, issuer).pathname);
  if (!match) {
    handle(req, res);
    return;
  }
  interaction(req, res, match[1]).catch((err) => {
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end(`interaction failed: ${err.message}`);
  });
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
