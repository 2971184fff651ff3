import { describe, expect, it } from 'vitest';
import { formatFieldPath, mapFieldErrors, parseFieldPath } from './fieldErrors';

describe('parseFieldPath', () => {
  it.each([
    ['peers[0].address', ['peers', 0, 'address']],
    ['vips[1].plugins[0].config', ['vips', 1, 'plugins', 0, 'config']],
    ['address', ['address']],
    ['$.peers[2].vips[3]', ['peers', 2, 'vips', 3]],
    ['/peers/2/vips/3', ['peers', 2, 'vips', 3]],
    ['/a~1b/c~0d', ['a/b', 'c~d']],
    ["vips[0]['plugins']", ['vips', 0, 'plugins']],
    ['gateway.workers', ['gateway', 'workers']],
    ['', []],
  ])('%s', (path, expected) => {
    expect(parseFieldPath(path)).toEqual(expected);
  });

  it('keeps text it cannot parse as one segment', () => {
    expect(parseFieldPath('peers[x')).toEqual(['peers[x']);
  });

  it('writes paths back in the API form', () => {
    expect(formatFieldPath(['peers', 0, 'address'])).toBe('peers[0].address');
    expect(formatFieldPath([2])).toBe('[2]');
  });
});

const peerScope = { prefixes: [['peers', '*'], []] as const, fields: { name: 0, address: 0, vips: 1 } };

describe('mapFieldErrors', () => {
  it('puts a document-path error on the form field it names', () => {
    const mapped = mapFieldErrors(
      { message: 'not an IPv4 address: "10.0.0.300"', field: 'peers[3].address' },
      peerScope,
    );
    expect(mapped).toEqual({
      fields: { address: [{ message: 'not an IPv4 address: "10.0.0.300"', rest: [] }] },
      general: [],
    });
  });

  it('accepts body-relative paths too', () => {
    const mapped = mapFieldErrors({ message: 'required', field: 'address' }, peerScope);
    expect(mapped.fields.address).toEqual([{ message: 'required', rest: [] }]);
  });

  it('keeps the sub-path of a list entry (vips[1])', () => {
    const mapped = mapFieldErrors({ message: 'bad address', field: 'peers[0].vips[1]' }, peerScope);
    expect(mapped.fields.vips).toEqual([{ message: 'bad address', rest: [1] }]);
  });

  it('maps every detail and keeps the summary message as a general error', () => {
    const mapped = mapFieldErrors(
      {
        message: 'the configuration is invalid (2 problems)',
        details: [
          { field: 'peers[0].name', message: 'too long' },
          { field: 'peers[0].address', message: 'not an IPv4 address' },
        ],
      },
      peerScope,
    );
    expect(mapped.general).toEqual(['the configuration is invalid (2 problems)']);
    expect(mapped.fields.name).toEqual([{ message: 'too long', rest: [] }]);
    expect(mapped.fields.address).toEqual([{ message: 'not an IPv4 address', rest: [] }]);
  });

  it('never loses a message no field claims: it goes to general with its path', () => {
    const mapped = mapFieldErrors(
      {
        message: 'invalid',
        field: 'gateway.address',
        details: [{ field: 'vips[0].address', message: 'duplicate VIP' }],
      },
      peerScope,
    );
    expect(mapped.fields).toEqual({});
    expect(mapped.general).toEqual(['gateway.address: invalid', 'vips[0].address: duplicate VIP']);
  });

  it('does not repeat a detail equal to the top-level field error', () => {
    const mapped = mapFieldErrors(
      { message: 'bad', field: 'address', details: [{ field: 'address', message: 'bad' }] },
      peerScope,
    );
    expect(mapped.fields.address).toHaveLength(1);
  });

  it("claims a binding field only at the bind form's own position", () => {
    const bindScope = {
      prefixes: [['vips', '*', 'plugins', 2], ['plugins', 2], []] as const,
      fields: { config: Infinity, on_error: 0, plugin: 0 },
    };
    const ours = mapFieldErrors(
      { message: 'deny: not a CIDR', field: 'vips[0].plugins[2].config' },
      bindScope,
    );
    expect(ours.fields.config).toEqual([{ message: 'deny: not a CIDR', rest: [] }]);
    const bodyPath = mapFieldErrors({ message: 'unknown plugin', field: 'plugins[2].plugin' }, bindScope);
    expect(bodyPath.fields.plugin).toEqual([{ message: 'unknown plugin', rest: [] }]);
    const other = mapFieldErrors({ message: 'unknown plugin', field: 'plugins[0].plugin' }, bindScope);
    expect(other.fields).toEqual({});
    expect(other.general).toEqual(['plugins[0].plugin: unknown plugin']);
  });

  it('does not claim paths deeper than a field allows', () => {
    const mapped = mapFieldErrors({ message: 'x', field: 'vips[0].plugins' }, peerScope);
    expect(mapped.fields).toEqual({});
    expect(mapped.general).toEqual(['vips[0].plugins: x']);
  });

  it('keeps the path inside a plugin config for the config field', () => {
    const bindScope = { prefixes: [['plugins', 0]] as const, fields: { config: Infinity } };
    const mapped = mapFieldErrors({ message: 'not a CIDR', field: 'plugins[0].config.deny[1]' }, bindScope);
    expect(mapped.fields.config).toEqual([{ message: 'not a CIDR', rest: ['deny', 1] }]);
  });

  it('ignores inherited object keys as field names', () => {
    const mapped = mapFieldErrors({ message: 'x', field: 'constructor' }, peerScope);
    expect(mapped.general).toEqual(['constructor: x']);
  });

  it('sends a message without any field to general', () => {
    expect(mapFieldErrors({ message: 'body is not JSON' }, peerScope)).toEqual({
      fields: {},
      general: ['body is not JSON'],
    });
  });
});
