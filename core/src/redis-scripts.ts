/**
 * Our Lua scripts as ioredis commands. A script lives in core/src/lua/<name>-<number of keys>.lua;
 * `defineScripts()` defines each on a connection once (however many stores share it) and returns the
 * connection typed with those commands. The `-N` is not a version: each process sends its own
 * script text, so an older and a newer script run side by side on the same keys during a rolling
 * deploy (README, "Mixed versions"); a change keeps each hash field's meaning as older scripts read it.
 */
import { readFileSync } from 'node:fs';
import type { RedisClient } from './redis.ts';

export interface ScriptDefinition {
  numberOfKeys: number;
  lua: string;
}

/** core/src/lua/<file>.lua, its number of keys read from the name's `-N` suffix. */
export function luaScript(file: string): ScriptDefinition {
  const keys = /-(\d+)$/.exec(file);
  if (!keys) throw new Error(`Lua script name without its number of keys (-N): ${file}`);
  return { numberOfKeys: Number(keys[1]), lua: readFileSync(new URL(`./lua/${file}.lua`, import.meta.url), 'utf8') };
}

/** A script's text without its leading --[[ ]] comment: what is sent with each EVAL (no bytes for nothing). */
export function luaEvalText(script: ScriptDefinition): string {
  return script.lua.replace(/^--\[\[[\s\S]*?\]\]\n/, '');
}

/** Defines the scripts missing on `redis` (by command name) and returns it as `T`, the commands' typed interface. */
export function defineScripts<T>(redis: RedisClient, scripts: Record<string, ScriptDefinition>): T {
  for (const [name, def] of Object.entries(scripts)) {
    if (!(name in redis)) redis.defineCommand(name, def);
  }
  return redis as unknown as T;
}
