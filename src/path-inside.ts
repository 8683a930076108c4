// Whether a path lies inside a folder (the folder itself counts): the module cache's root check and
// the config's build-folder check share it.

import path from 'node:path';

export function isInside(dir: string, candidate: string): boolean {
  const relative = path.relative(dir, candidate);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}
