// The daemon's view of its pipelines' built modules: every pipeline's schema and handlers are
// built through the module service (src/transpile/module-build.ts) before its actors start, and
// actors import the built files. With `--watch`, a change to any module of a pipeline's graph
// rebuilds it and hands the new handlers to the running pipeline, which swaps them at its next
// batch boundary. A failed rebuild (a syntax error mid-edit) is logged and the pipeline keeps
// its current handlers; a changed schema cannot be swapped live and needs a restart.

import { realpath } from 'node:fs/promises';
import path from 'node:path';
import type { PipelineConfig } from '../config.ts';
import { StrataError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { buildModules } from './module-build.ts';
import { type ModuleService, ModuleSyntaxError } from './module-service.ts';

export interface PipelineBuildsOptions {
  /** A module service whose root contains every entry (see `moduleScope`). */
  modules: ModuleService;
  /** The watched project folder: the paths `onChange` is given are relative to it. */
  projectDir: string;
  buildRoot: string;
  pipelines: readonly PipelineConfig[];
  log: Logger;
}

interface Built {
  pipeline: PipelineConfig;
  sources: ReadonlySet<string>;
}

export class PipelineBuilds {
  private readonly options: PipelineBuildsOptions;
  private readonly current = new Map<string, Built>();
  /** Per pipeline: the rebuild running now, and whether another change arrived meanwhile. */
  private readonly rebuilding = new Map<string, { again: boolean }>();
  private projectReal = '';

  constructor(options: PipelineBuildsOptions) {
    this.options = options;
  }

  /** Builds every pipeline; a module that does not transpile is a project error (exit 1). */
  async buildAll(): Promise<void> {
    this.projectReal = await realpath(this.options.projectDir);
    for (const pipeline of this.options.pipelines)
      this.current.set(pipeline.name, await this.build(pipeline));
  }

  /** The pipeline's configuration with its schema and handlers pointing at the built files. */
  pipeline(name: string): PipelineConfig {
    const built = this.current.get(name);
    if (built === undefined) throw new Error(`pipeline ${name} is not built`);
    return built.pipeline;
  }

  /**
   * Whether a project-relative canonical path (as ModuleService.resolve gives it) is a module of
   * some pipeline's current graph: what `GET /v1/modules/*` may serve. Dotfiles, configs, data and
   * scripts no pipeline imports are not.
   */
  isPipelineModule(canonicalPath: string): boolean {
    const absolute = path.join(this.projectReal, canonicalPath);
    for (const built of this.current.values()) if (built.sources.has(absolute)) return true;
    return false;
  }

  pipelines(): PipelineConfig[] {
    return this.options.pipelines.map((pipeline) => this.pipeline(pipeline.name));
  }

  /**
   * After an invalidation: rebuilds the pipelines whose module graph contains a changed path and
   * hands each new build to `apply` (the running pipeline). Rebuilds of one pipeline never overlap;
   * changes arriving during one are folded into the next.
   */
  onChange(paths: readonly string[] | 'all', apply: (pipeline: PipelineConfig) => Promise<void>): void {
    for (const pipeline of this.options.pipelines) {
      const built = this.current.get(pipeline.name);
      if (built === undefined) continue;
      const touched =
        paths === 'all' || paths.some((changed) => built.sources.has(path.join(this.projectReal, changed)));
      if (!touched) continue;
      const running = this.rebuilding.get(pipeline.name);
      if (running !== undefined) {
        running.again = true;
        continue;
      }
      const state = { again: false };
      this.rebuilding.set(pipeline.name, state);
      void this.rebuildLoop(pipeline, state, apply);
    }
  }

  private async rebuildLoop(
    pipeline: PipelineConfig,
    state: { again: boolean },
    apply: (pipeline: PipelineConfig) => Promise<void>,
  ): Promise<void> {
    const log = this.options.log.child({ pipeline: pipeline.name });
    do {
      state.again = false;
      try {
        const built = await this.build(pipeline);
        if (built.pipeline.handlers.join() === this.current.get(pipeline.name)?.pipeline.handlers.join())
          continue; // the graph's content did not change (an editor touched a file)
        await apply(built.pipeline);
        this.current.set(pipeline.name, built);
        log.info({ build: built.pipeline.handlers }, 'handlers reloaded; in effect from the next batch');
      } catch (error) {
        log.error({ err: error }, 'handlers not reloaded; the pipeline keeps its current handlers');
      }
    } while (state.again);
    this.rebuilding.delete(pipeline.name);
  }

  private async build(pipeline: PipelineConfig): Promise<Built> {
    const { modules, buildRoot } = this.options;
    try {
      const build = await buildModules(modules, [pipeline.schema, ...pipeline.handlers], buildRoot);
      return {
        pipeline: {
          ...pipeline,
          schema: build.builtPath(pipeline.schema),
          handlers: pipeline.handlers.map((handler) => build.builtPath(handler)),
        },
        sources: build.sources,
      };
    } catch (error) {
      if (error instanceof ModuleSyntaxError) {
        const { diagnostic } = error;
        throw new StrataError(
          'STRATA_ERR_CONFIG_INVALID',
          `pipeline ${pipeline.name}: ${diagnostic.file}:${diagnostic.line}:${diagnostic.column}: ${diagnostic.message}${diagnostic.frame === null ? '' : `\n${diagnostic.frame}`}`,
          { cause: error },
        );
      }
      if (error instanceof StrataError && error.code === 'STRATA_ERR_MODULE_NOT_FOUND') {
        throw new StrataError('STRATA_ERR_CONFIG_INVALID', `pipeline ${pipeline.name}: ${error.message}`, {
          cause: error,
        });
      }
      throw error;
    }
  }
}

/**
 * The folder a project's modules are built from: the project folder, or the closest folder that
 * also holds every schema and handler module the pipelines name (a monorepo's shared code). The
 * HTTP module route keeps serving the project folder only.
 */
export function moduleScope(projectDir: string, pipelines: readonly PipelineConfig[]): string {
  let scope = path.resolve(projectDir);
  for (const file of pipelines.flatMap((pipeline) => [pipeline.schema, ...pipeline.handlers])) {
    while (path.relative(scope, file).startsWith('..')) scope = path.dirname(scope);
  }
  return scope;
}
