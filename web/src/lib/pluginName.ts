// The plugin name rules of the API (`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$`) and the default
// name of an uploaded file. Only naming: never reads the file.

/** The API's pattern for `/api/v1/plugins/{name}`. */
export const PLUGIN_NAME_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/;

/** True when `name` is accepted by the API as a plugin name. */
export function isValidPluginName(name: string): boolean {
  return PLUGIN_NAME_PATTERN.test(name);
}

/**
 * The name an upload defaults to: the file name without `.wasm`, other characters than
 * letters, digits, `.`, `_` and `-` replaced by `-`, a leading `.` by `_`, cut to 64.
 */
export function defaultPluginName(fileName: string): string {
  const base = fileName.split(/[\\/]/).pop() ?? '';
  const stem = base.replace(/\.wasm$/i, '');
  const cleaned = stem
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^\./, '_')
    .slice(0, 64);
  return cleaned === '' ? 'plugin' : cleaned;
}
