import { describe, expect, it } from 'vitest';
import { configToText, describeJsonError, parseConfigText } from './jsonConfig';

describe('parseConfigText', () => {
  it('reads empty text as "no config"', () => {
    expect(parseConfigText('')).toEqual({ ok: true, value: undefined, empty: true });
    expect(parseConfigText(' \n\t')).toEqual({ ok: true, value: undefined, empty: true });
  });

  it('parses JSON of any kind', () => {
    expect(parseConfigText('{"deny": ["198.51.100.0/24"]}')).toEqual({
      ok: true,
      value: { deny: ['198.51.100.0/24'] },
      empty: false,
    });
    expect(parseConfigText('42')).toEqual({ ok: true, value: 42, empty: false });
  });

  it('refuses text that is not JSON, saying so', () => {
    const result = parseConfigText('{\n  "deny": [1,]\n}');
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.message).toMatch(/^Not valid JSON/);
    expect(parseConfigText("{deny: ['x']}").ok).toBe(false);
  });
});

describe('describeJsonError', () => {
  it('turns an engine offset into a line and column', () => {
    // Offset 15 is the "]" on line 2: "{\n" is 2 chars, then '  "deny": [1,' is 13.
    const text = '{\n  "deny": [1,]\n}';
    expect(describeJsonError(text, 'Unexpected token ] in JSON at position 15')).toBe(
      'Not valid JSON (line 2, column 14): Unexpected token ]',
    );
    expect(
      describeJsonError(
        text,
        'Expected double-quoted property name in JSON at position 15 (line 2 column 14)',
      ),
    ).toBe('Not valid JSON (line 2, column 14): Expected double-quoted property name');
  });

  it('keeps an engine message without an offset as it is', () => {
    expect(describeJsonError('x', 'Unexpected token \'x\', "x" is not valid JSON')).toBe(
      'Not valid JSON: Unexpected token \'x\', "x" is not valid JSON',
    );
  });
});

describe('configToText', () => {
  it('pretty-prints a config and shows nothing for none', () => {
    expect(configToText(undefined)).toBe('');
    expect(configToText({ a: [1] })).toBe('{\n  "a": [\n    1\n  ]\n}');
    expect(configToText(null)).toBe('null');
  });
});
