import { describe, expect, it } from 'vitest';
import { gatewayAddresses, gatewayText } from './gateway';

describe('gatewayAddresses', () => {
  it('shows the IPv6 GIP beside the IPv4 one', () => {
    const both = { gateway_address: '10.0.0.1', gateway_address6: '2001:db8::1' };
    expect(gatewayAddresses(both)).toEqual(['10.0.0.1', '2001:db8::1']);
    expect(gatewayText(both)).toBe('gateway 10.0.0.1 + 2001:db8::1');
  });

  it('shows an IPv6-only gateway once (the server sends it in both fields)', () => {
    const v6 = { gateway_address: '2001:db8::1', gateway_address6: '2001:db8::1' };
    expect(gatewayAddresses(v6)).toEqual(['2001:db8::1']);
    expect(gatewayText(v6)).toBe('gateway 2001:db8::1');
  });

  it('shows an IPv4-only gateway, or one that does not send the field, alone', () => {
    expect(gatewayText({ gateway_address: '10.0.0.1', gateway_address6: null })).toBe('gateway 10.0.0.1');
    expect(gatewayText({ gateway_address: '10.0.0.1' })).toBe('gateway 10.0.0.1');
  });
});
