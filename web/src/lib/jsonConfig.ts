// Checks the text of a binding's JSON config editor before anything is sent: empty means
// "no config", anything else must parse as JSON. Only parsing: the plugin itself judges
// the content (the API answers `plugin_refused_config`).

/** The editor's text, understood. */
export type ConfigParse = { ok: true; value: unknown; empty: boolean } | { ok: false; message: string };

/** Parses the config editor's text; the error names the line and column. */
export function parseConfigText(text: string): ConfigParse {
  if (text.trim() === '') return { ok: true, value: undefined, empty: true };
  try {
    return { ok: true, value: JSON.parse(text) as unknown, empty: false };
  } catch (error) {
    return {
      ok: false,
      message: describeJsonError(text, error instanceof Error ? error.message : String(error)),
    };
  }
}

/**
 * The operator-facing text of a JSON.parse failure. Engines word it differently; when the
 * message carries an offset (`at position 15`), it becomes a line and column of `text`.
 */
export function describeJsonError(text: string, engineMessage: string): string {
  const position = /position (\d+)/.exec(engineMessage);
  const where = position ? ` (${lineAndColumn(text, Number(position[1]))})` : '';
  return `Not valid JSON${where}: ${stripPosition(engineMessage)}`;
}

/** Pretty text for an existing config (two-space indent), or '' when there is none. */
export function configToText(value: unknown): string {
  return value === undefined ? '' : JSON.stringify(value, null, 2);
}

function lineAndColumn(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - before.lastIndexOf('\n');
  return `line ${line}, column ${column}`;
}

function stripPosition(message: string): string {
  return message.replace(/\s*(in JSON )?at position \d+( \(line \d+ column \d+\))?/, '').trim();
}
