#!/usr/bin/env node
// Checks docker/compose.yaml against docker/nginx.conf and docker/Dockerfile.
// usage: node check-compose.mjs <docker folder>; exits 1 on the first list of
// problems, 0 when all agree.

import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const YAML = createRequire(path.resolve(here, '..', '..', 'tools', 'node_modules', 'x.js'))('yaml');

const dir = process.argv[2];
if (!dir) {
  console.error('usage: check-compose.mjs <docker folder>');
  process.exit(2);
}
const compose = YAML.parse(readFileSync(path.join(dir, 'compose.yaml'), 'utf8'));
const nginxConf = readFileSync(path.join(dir, 'nginx.conf'), 'utf8');
const dockerfile = readFileSync(path.join(dir, 'Dockerfile'), 'utf8');
const problems = [];
const check = (ok, what) => {
  if (!ok)
    problems.push(what);
};

// IPv4 CIDR -> [network as uint32, prefix length], or null.
function cidr(text) {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(String(text).trim());
  if (!m)
    return null;
  const len = Number(m[5]);
  const addr = m.slice(1, 5).reduce((acc, o) => acc * 256 + Number(o), 0);
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return [(addr & mask) >>> 0, len];
}

const services = compose.services ?? {};
const svcName = Object.keys(services).find((n) => services[n].build);
const svc = services[svcName] ?? {};
const proxyName = Object.keys(services).find((n) => String(services[n].image ?? '').startsWith('nginx'));
const proxy = services[proxyName] ?? {};
check(svcName, 'no service built from the Dockerfile');
check(proxyName, 'no nginx service');

// The service: built from docker/Dockerfile, secrets from an env_file, /data on a named volume.
check(svc.build && svc.build.dockerfile === 'docker/Dockerfile', 'the service is not built from docker/Dockerfile');
check(svc.build && existsSync(path.resolve(dir, svc.build.context ?? '.', 'docker', 'Dockerfile')),
      'the build context does not hold docker/Dockerfile');
check(svc.env_file, 'the service takes no env_file (secrets)');
const envFile = Array.isArray(svc.env_file) ? svc.env_file[0] : svc.env_file;
const envPath = typeof envFile === 'object' ? envFile?.path : envFile;
check(envPath && existsSync(path.join(dir, `${envPath}.example`)), `no ${envPath}.example beside compose.yaml`);
const env = svc.environment ?? {};
// A secret may appear only as a required interpolation (its value comes from
// the shell or docker/.env), never written here.
const required = (name, v) => new RegExp(`^\\$\\{${name}:\\?[^}]+\\}$`).test(String(v ?? ''));
for (const secret of ['NOVITA_API_KEY', 'API_TOKEN', 'WEBHOOK_SECRET', 'NOVITA_INTERNAL_API_KEY'])
  check(!(secret in env) || required(secret, env[secret]),
        `${secret} is written in compose.yaml; keep it in the env_file or as \${${secret}:?...}`);
// Without API_TOKEN the API is open: compose must refuse to start.
check(required('API_TOKEN', env.API_TOKEN), 'compose starts without API_TOKEN (want API_TOKEN: ${API_TOKEN:?...})');
const dataVolume = (svc.volumes ?? []).map(String).find((v) => v.endsWith(':/data'));
check(dataVolume, 'no volume mounted at /data');
const volumeName = dataVolume ? dataVolume.split(':')[0] : '';
check(volumeName && compose.volumes && volumeName in compose.volumes, `/data is not a named volume (${volumeName})`);
check(/VOLUME \/data/.test(dockerfile) && /DATABASE_PATH=\/data\//.test(dockerfile),
      'the Dockerfile does not keep the database under the /data volume');

// TRUSTED_PROXIES is exactly the subnet of the network the two share.
const shared = (svc.networks ?? []).filter((n) => (proxy.networks ?? []).includes(n));
check(shared.length === 1, `the service and nginx should share one network (share: ${shared.join(', ')})`);
const subnets = shared.flatMap((n) => compose.networks?.[n]?.ipam?.config ?? []).map((c) => c.subnet);
check(subnets.length === 1 && cidr(subnets[0]), 'the shared network has no explicit IPv4 subnet');
const trusted = String(env.TRUSTED_PROXIES ?? '').split(',').map((s) => s.trim()).filter(Boolean);
check(trusted.length > 0, 'TRUSTED_PROXIES is not set on the service');
if (subnets.length === 1 && cidr(subnets[0])) {
  const [net, len] = cidr(subnets[0]);
  for (const t of trusted) {
    const c = cidr(t.includes('/') ? t : `${t}/32`);
    check(c && c[1] >= len && ((c[0] & ((0xffffffff << (32 - len)) >>> 0)) >>> 0) === net,
          `TRUSTED_PROXIES entry ${t} is outside the proxy network ${subnets[0]}`);
  }
}

// nginx: our nginx.conf, the upstream by service name and port, the listen port published.
const confMount = (proxy.volumes ?? []).map(String).find((v) => v.startsWith('./nginx.conf:'));
check(confMount, 'nginx does not mount ./nginx.conf');
const confTarget = confMount ? confMount.split(':')[1] : '';
const cmd = (proxy.command ?? []).map(String);
check(cmd.includes('-c') && cmd[cmd.indexOf('-c') + 1] === confTarget,
      `nginx is not started with -c ${confTarget}`);
check(cmd.includes('-p'), 'nginx is not started with a prefix (-p) for its writable paths');
check(!cmd.includes('-g'), "nginx.conf already says 'daemon off;': no -g");
const upstream = /^\s*server\s+([^\s;]+);\s*# nrd:upstream$/m.exec(nginxConf);
const listen = /^\s*listen\s+([^\s;]+);\s*# nrd:listen$/m.exec(nginxConf);
check(upstream, 'nginx.conf has no nrd:upstream line');
check(listen, 'nginx.conf has no nrd:listen line');
const svcPort = (/^ENV[\s\S]*?PORT=(\d+)/m.exec(dockerfile) ?? [])[1];
if (upstream)
  check(upstream[1] === `${svcName}:${svcPort}`, `the upstream ${upstream[1]} is not ${svcName}:${svcPort}`);
check((svc.expose ?? []).map(String).includes(svcPort), `the service does not expose ${svcPort}`);
if (listen) {
  const port = listen[1].split(':').pop();
  check((proxy.ports ?? []).map(String).some((p) => p.endsWith(`:${port}`)),
        `nginx listens on ${port} but compose does not publish it`);
}
// Published on loopback unless told otherwise.
for (const p of (proxy.ports ?? []).map(String))
  check(/^(127\.0\.0\.1|\$\{[A-Z_]+:-127\.0\.0\.1\}):/.test(p),
        `nginx's port ${p} is not published on 127.0.0.1 by default`);
check(proxy.depends_on?.[svcName]?.condition === 'service_healthy',
      'nginx does not wait for the service to be healthy');
check(/^HEALTHCHECK .*CMD \["novita-recoveryd", "healthcheck"\]/ms.test(dockerfile),
      'the Dockerfile has no HEALTHCHECK running novita-recoveryd healthcheck');
check(/^USER nrd$/m.test(dockerfile), 'the Dockerfile does not run as user nrd');
// OCI labels on the runtime image: version, source, licenses (MIT, as LICENSE says).
const runtimeStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
for (const l of ['version', 'source', 'licenses', 'revision'])
  check(new RegExp(`org\\.opencontainers\\.image\\.${l}=`).test(runtimeStage),
        `the runtime image has no org.opencontainers.image.${l} label`);
check(/org\.opencontainers\.image\.licenses="MIT"/.test(runtimeStage), 'the image is not labelled MIT');
const cmakeVersion = (/project\(novita-recoveryd VERSION ([0-9.]+)/.exec(
  readFileSync(path.join(dir, '..', 'CMakeLists.txt'), 'utf8')) ?? [])[1];
check(new RegExp(`^ARG VERSION=${cmakeVersion}$`, 'm').test(runtimeStage),
      `the image's default VERSION is not the project's ${cmakeVersion}`);
check(/^ENV[\s\S]*?HOST=0\.0\.0\.0/m.test(dockerfile), 'the Dockerfile does not set HOST=0.0.0.0');

// The monitoring profile: Prometheus with deploy/prometheus (scraping the
// service under the job name the alerts use), Grafana with deploy/grafana.
const prom = services.prometheus ?? {};
const graf = services.grafana ?? {};
for (const [name, s] of [['prometheus', prom], ['grafana', graf]]) {
  check((s.profiles ?? []).includes('monitoring'), `${name} is not in the monitoring profile`);
  for (const v of (s.volumes ?? []).map(String).filter((x) => x.startsWith('.'))) {
    const host = v.split(':')[0];
    check(existsSync(path.resolve(dir, host)), `${name} mounts ${host}, which does not exist`);
  }
  for (const p of (s.ports ?? []).map(String))
    check(p.startsWith('127.0.0.1:'), `${name}'s port ${p} is not published on 127.0.0.1`);
  check((s.networks ?? []).some((n) => (svc.networks ?? []).includes(n) && !shared.includes(n)) ||
        name === 'grafana', `${name} does not reach the service on a network of its own`);
}
const mounts = (s, target) => (s.volumes ?? []).map(String).find((v) => v.split(':')[1] === target);
const promConf = mounts(prom, '/etc/prometheus/prometheus.yml');
const promRules = mounts(prom, '/etc/prometheus/alerts.yml');
check(promConf && promRules, 'prometheus does not mount prometheus.yml and alerts.yml into /etc/prometheus');
if (promConf && existsSync(path.resolve(dir, promConf.split(':')[0]))) {
  const conf = YAML.parse(readFileSync(path.resolve(dir, promConf.split(':')[0]), 'utf8'));
  check((conf.rule_files ?? []).includes('alerts.yml'), 'prometheus.yml does not load alerts.yml');
  const job = (conf.scrape_configs ?? []).find((j) => j.job_name === 'novita-recoveryd');
  check(job, 'prometheus.yml has no job novita-recoveryd (the alerts use it)');
  const targets = (job?.static_configs ?? []).flatMap((c) => c.targets ?? []);
  check(targets.includes(`${svcName}:${svcPort}`), `prometheus.yml does not scrape ${svcName}:${svcPort}`);
}
check(mounts(graf, '/etc/grafana/provisioning'), 'grafana does not mount its provisioning folder');
const dash = mounts(graf, '/var/lib/grafana/dashboards/novita-recoveryd.json');
check(dash && /deploy\/grafana\/novita-recoveryd\.json$/.test(dash.split(':')[0]),
      'grafana does not mount deploy/grafana/novita-recoveryd.json');

// The ha profile: PostgreSQL, two replicas of the service on it (the
// connection string a secret file, DATABASE_URL_FILE), and nginx-ha
// balancing across both with docker/nginx.conf's settings.
const ha = ['postgres', 'recoveryd-a', 'recoveryd-b', 'nginx-ha'];
const replicas = ['recoveryd-a', 'recoveryd-b'];
for (const n of ha)
  check((services[n]?.profiles ?? []).includes('ha'), `${n} is not in the ha profile`);
for (const [n, s] of Object.entries(services))
  if (!(s.profiles ?? []).includes('ha'))
    for (const d of Object.keys(s.depends_on ?? {}))
      check(!ha.includes(d), `${n} (not in the ha profile) depends on ${d}`);
check(!(svc.profiles ?? []).length && !(proxy.profiles ?? []).length,
      'the single service and its nginx should start without a profile');
const pg = services.postgres ?? {};
const secretFile = (name) => compose.secrets?.[name]?.file;
const secretTarget = (s, name) => (s.secrets ?? []).map(String).includes(name) ? `/run/secrets/${name}` : null;
const pgEnv = pg.environment ?? {};
check(/^postgres:/.test(String(pg.image ?? '')), 'the ha profile has no postgres image');
check(pgEnv.POSTGRES_PASSWORD_FILE && pgEnv.POSTGRES_PASSWORD_FILE === secretTarget(pg, 'postgres_password'),
      'postgres does not take its password from the postgres_password secret');
check(!('POSTGRES_PASSWORD' in pgEnv), 'POSTGRES_PASSWORD is written in compose.yaml');
check((pg.volumes ?? []).map(String).some((v) => v.endsWith(':/var/lib/postgresql/data') &&
                                                  v.split(':')[0] in (compose.volumes ?? {})),
      'postgres keeps its data on no named volume');
check(JSON.stringify(pg.healthcheck?.test ?? []).includes('pg_isready'), 'postgres has no pg_isready healthcheck');
check(!(pg.ports ?? []).length, 'postgres publishes a port');
const dbNets = (pg.networks ?? []).filter((n) => compose.networks?.[n]?.internal === true);
check(dbNets.length === 1, 'postgres is not on one internal network of its own');
for (const name of ['database_url', 'postgres_password']) {
  const f = secretFile(name);
  check(f && existsSync(path.join(dir, `${f}.example`)), `secret ${name}: no ${f}.example beside compose.yaml`);
}
// The example URL names the service, user and database postgres is made with.
const urlExample = secretFile('database_url') && existsSync(path.join(dir, `${secretFile('database_url')}.example`))
  ? readFileSync(path.join(dir, `${secretFile('database_url')}.example`), 'utf8').trim() : '';
const u = urlExample ? new URL(urlExample) : null;
check(u && /^postgres(ql)?:$/.test(u.protocol) && u.hostname === 'postgres' &&
      u.username === pgEnv.POSTGRES_USER && u.pathname === `/${pgEnv.POSTGRES_DB}`,
      `the database_url example ${urlExample} does not name postgres, its user and its database`);
for (const n of replicas) {
  const r = services[n] ?? {};
  const renv = r.environment ?? {};
  check(JSON.stringify(r.build) === JSON.stringify(svc.build) && r.image === svc.image,
        `${n} is not built and named as ${svcName}`);
  check(JSON.stringify(r.env_file) === JSON.stringify(svc.env_file), `${n} does not take ${svcName}'s env_file`);
  check(renv.DATABASE_URL_FILE && renv.DATABASE_URL_FILE === secretTarget(r, 'database_url'),
        `${n}: DATABASE_URL_FILE is not the database_url secret`);
  check(!('DATABASE_URL' in renv), `${n}: DATABASE_URL is written in compose.yaml`);
  check(required('API_TOKEN', renv.API_TOKEN), `${n} starts without API_TOKEN`);
  check(renv.TRUSTED_PROXIES === env.TRUSTED_PROXIES, `${n}: TRUSTED_PROXIES differs from ${svcName}'s`);
  check(r.depends_on?.postgres?.condition === 'service_healthy', `${n} does not wait for postgres to be healthy`);
  check(shared.every((x) => (r.networks ?? []).includes(x)) && dbNets.every((x) => (r.networks ?? []).includes(x)),
        `${n} is not on the proxy network and postgres's`);
  check((r.expose ?? []).map(String).includes(svcPort), `${n} does not expose ${svcPort}`);
  for (const k of ['read_only', 'cap_drop', 'security_opt', 'tmpfs', 'stop_grace_period'])
    check(JSON.stringify(r[k]) === JSON.stringify(svc[k]), `${n}: ${k} differs from ${svcName}'s`);
}
const nha = services['nginx-ha'] ?? {};
check(JSON.stringify(nha.command) === JSON.stringify(proxy.command) && nha.image === proxy.image,
      'nginx-ha is not started as nginx is');
check((nha.volumes ?? []).map(String).includes(`./nginx-ha.conf:${confTarget}:ro`),
      `nginx-ha does not mount ./nginx-ha.conf at ${confTarget}`);
check(JSON.stringify(nha.ports) === JSON.stringify(proxy.ports), 'nginx-ha does not publish what nginx does');
check(JSON.stringify(nha.networks) === JSON.stringify(proxy.networks), 'nginx-ha is not on nginx\'s networks');
for (const n of replicas)
  check(nha.depends_on?.[n]?.condition === 'service_healthy', `nginx-ha does not wait for ${n} to be healthy`);
const haConfPath = path.join(dir, 'nginx-ha.conf');
const haConf = existsSync(haConfPath) ? readFileSync(haConfPath, 'utf8') : '';
const haUpstream = [...haConf.matchAll(/^\s*server\s+([^\s;]+)[^;]*;\s*# nrd:upstream-ha$/mg)].map((m) => m[1]);
check(JSON.stringify(haUpstream) === JSON.stringify(replicas.map((n) => `${n}:${svcPort}`)),
      `nginx-ha.conf's upstream (${haUpstream.join(', ')}) is not ${replicas.join(' and ')}`);
check(!/^\s*(ip_hash|hash|sticky)\b/m.test(haConf), 'nginx-ha.conf pins clients to one replica');
// Everything else is nginx.conf's, line for line (comments aside).
const body = (t) => t.split('\n').filter((l) => !/^\s*#/.test(l) && !/# nrd:upstream(-ha)?$/.test(l)).join('\n');
check(haConf && body(haConf) === body(nginxConf), 'nginx-ha.conf differs from nginx.conf beyond the upstream');

if (problems.length > 0) {
  for (const p of problems)
    console.log(`check-compose: ${p}`);
  process.exit(1);
}
console.log(`check-compose: compose.yaml agrees with nginx.conf and the Dockerfile (TRUSTED_PROXIES ${trusted.join(',')}); ha: ${replicas.join(', ')} on postgres behind nginx-ha`);
