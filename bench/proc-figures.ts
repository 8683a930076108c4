// A live process's figures from Linux /proc, for the benchmarks that spawn daemons: its CPU (every
// thread) and its memory as the kernel counts it.
import { readFileSync } from 'node:fs';

/** User + system CPU seconds the process has used, all threads (clock ticks are 1/100 s). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // After the command name, which may hold spaces, in parentheses: utime and stime are fields 11, 12.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** A memory field of /proc/<pid>/status (VmRSS: now, VmHWM: the peak), in bytes. */
export function memoryBytes(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match![1]) * 1024;
}
