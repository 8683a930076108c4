// `strata status`: fetch a running daemon's `/status` and render it as readable tables.

import Table from 'cli-table3';
import { StrataError } from './errors.ts';

// Plain borders and headings: the output is often piped or read in logs.
const style = { head: [] as string[], border: [] as string[] };

import type { FleetStatus, StatusSnapshot } from './status-types.ts';

export async function fetchStatus(baseUrl: string, timeoutMs = 3_000): Promise<StatusSnapshot> {
  let response: Response;
  try {
    // STRATA_API_TOKEN: the token this client presents when the daemon has access control.
    const token = process.env.STRATA_API_TOKEN;
    response = await fetch(new URL('/status', baseUrl), {
      signal: AbortSignal.timeout(timeoutMs),
      ...(token === undefined || token === '' ? {} : { headers: { authorization: `Bearer ${token}` } }),
    });
  } catch (error) {
    throw new StrataError(
      'STRATA_ERR_DAEMON_UNREACHABLE',
      `no Strata daemon answered at ${baseUrl} (${(error as Error).message})`,
      {
        cause: error,
      },
    );
  }
  if (!response.ok) {
    throw new StrataError('STRATA_ERR_DAEMON_UNREACHABLE', `${baseUrl}/status answered ${response.status}`);
  }
  return (await response.json()) as StatusSnapshot;
}

export function renderStatus(status: StatusSnapshot): string {
  const p = status.process;
  const header = `strata ${p.version} — ${p.state} — pid ${p.pid} — up ${formatDuration(p.uptimeSeconds)} — process ${p.id}
database: ${status.database.kind}${status.database.storage ? ` (${status.database.storage})` : ''} — redis: ${status.redis.state}`;

  const actors = new Table({
    style,
    head: ['actor', 'state', 'incarnation', 'restarts', 'mailbox', 'in-flight', 'ELU', 'heap', 'last exit'],
  });
  for (const actor of status.actors) {
    actors.push([
      actor.name,
      actor.state,
      actor.incarnation,
      actor.restarts,
      actor.mailboxDepth,
      actor.inFlightCalls,
      `${Math.round(actor.eventLoopUtilization * 100)}%`,
      formatBytes(actor.heapUsedBytes),
      actor.lastExitReason ?? '—',
    ]);
  }

  const pipelines = new Table({
    style,
    head: [
      'pipeline',
      'state',
      'processed',
      'committed',
      'lag',
      'head',
      'events',
      'events/s',
      'in memory',
      'reorgs',
    ],
  });
  for (const pipeline of status.pipelines) {
    pipelines.push([
      pipeline.pipeline,
      pipeline.state,
      pipeline.processedCheckpoint,
      pipeline.committedCheckpoint,
      pipeline.processedCheckpoint - pipeline.committedCheckpoint,
      pipeline.headBlockNumber ?? '—',
      pipeline.eventsProcessed.toLocaleString('en-US'),
      pipeline.eventsPerSecond.toLocaleString('en-US'),
      pipeline.inMemoryObjects.toLocaleString('en-US'),
      reorgsCell(pipeline),
    ]);
  }

  const pools = new Table({ style, head: ['db pool', 'total', 'idle', 'waiting'] });
  for (const [name, pool] of Object.entries(status.database.pools))
    pools.push([name, pool.total, pool.idle, pool.waiting]);

  const parts = [header, actors.toString(), pipelines.toString(), pools.toString()];
  if (status.shapes !== undefined && status.shapes.shapes > 0) {
    const shapes = new Table({
      style,
      head: ['shapes', 'indexed', 'scanned', 'log messages', 'live requests'],
    });
    const s = status.shapes;
    shapes.push([s.shapes, s.indexed, s.scanned, s.logMessages.toLocaleString('en-US'), s.liveRequests]);
    parts.push(shapes.toString());
    const tables = new Table({ style, head: ['shapes of table', 'shapes', 'log messages'] });
    for (const table of s.tables ?? [])
      tables.push([table.table, table.shapes, table.logMessages.toLocaleString('en-US')]);
    if ((s.tables ?? []).length > 0) parts.push(tables.toString());
  }
  if (status.fleet !== undefined) parts.push(...renderFleet(status.fleet));
  return parts.join('\n');
}

/** The fleet: every live process, and each pipeline's owner, epoch and lease expiry. */
function renderFleet(fleet: FleetStatus): string[] {
  const short = (id: string | null) => (id === null ? '—' : id.slice(0, 8));
  const processes = new Table({
    style,
    head: ['process', 'host', 'pid', 'version', 'started', 'last heartbeat', 'owns', 'target'],
  });
  for (const process of fleet.processes) {
    const owns = fleet.leases.filter((lease) => lease.owner === process.id).length;
    const name = `${short(process.id)}${process.id === fleet.self ? ' (this)' : ''}${process.stopping ? ' stopping' : ''}`;
    processes.push([
      name,
      process.host,
      process.pid,
      process.version,
      process.startedAt,
      process.lastHeartbeat,
      owns,
      process.target,
    ]);
  }
  const leases = new Table({ style, head: ['pipeline', 'owner', 'epoch', 'lease expires'] });
  for (const lease of fleet.leases)
    leases.push([lease.pipeline, short(lease.owner), lease.epoch, lease.expiresAt]);
  return [processes.toString(), leases.toString()];
}

/** Reorgs, and how many of them had to roll back stored state (the rest were undone in memory). */
function reorgsCell(pipeline: StatusSnapshot['pipelines'][number]): string {
  const stored = pipeline.reorgsUndid?.['stored state'] ?? 0;
  return stored === 0 ? String(pipeline.reorgs ?? 0) : `${pipeline.reorgs} (${stored} stored)`;
}

function formatDuration(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return h > 0 ? `${h}h${m}m` : m > 0 ? `${m}m${s}s` : `${s}s`;
}

function formatBytes(bytes: number): string {
  if (bytes >= 1 << 30) return `${(bytes / (1 << 30)).toFixed(1)} GiB`;
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
  return `${Math.round(bytes / 1024)} KiB`;
}
