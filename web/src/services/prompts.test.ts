import { describe, expect, it } from 'vitest';
import { tokensToday, utcDay } from './prompts';

describe('tokensToday', () => {
  it('counts tokens_today only for the UTC day it names', () => {
    expect(utcDay(new Date('2026-11-30T23:59:00Z'))).toBe('2026-11-30');
    expect(tokensToday({ day: '2026-11-30', tokens_today: 1234 }, '2026-11-30')).toBe(1234);
    expect(tokensToday({ day: '2026-11-29', tokens_today: 1234 }, '2026-11-30')).toBe(0);
    expect(tokensToday(undefined, '2026-11-30')).toBe(0);
  });
});
