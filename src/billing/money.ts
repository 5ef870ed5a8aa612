/**
 * Exact money: decimals are bigint units at a scale (no floats anywhere). A price like
 * "0.00025" is { units: 25n, scale: 5 }; an amount in a currency is bigint minor units
 * (cents for USD, won for KRW). Rounding is half-up (half away from zero for negatives).
 */
import { quote } from '../ground/text.js';

export interface Decimal {
  units: bigint;
  /** Digits after the decimal point. */
  scale: number;
}

export class MoneyError extends Error {
  override name = 'MoneyError';
}

const DECIMAL_RE = /^(-)?(\d+)(?:\.(\d+))?$/;
/** Enough for any price; bounds the bigint work done on hostile input. */
const MAX_DIGITS = 38;

/** Parse a plain decimal string ("12", "0.0005", "-1.50"); no exponents, no separators. */
export function parseDecimal(s: string): Decimal {
  const m = typeof s === 'string' ? DECIMAL_RE.exec(s) : null;
  if (!m) throw new MoneyError(`not a decimal number: ${quote(s)} (expected digits with an optional fraction, e.g. "0.0005")`);
  // the regex's integer part always takes part in a match
  const [, sign, whole = '', frac = ''] = m;
  if (whole.length + frac.length > MAX_DIGITS) throw new MoneyError(`decimal has too many digits: ${quote(s)}`);
  const units = BigInt(whole + frac);
  return { units: sign ? -units : units, scale: frac.length };
}

export function isDecimalString(s: unknown): s is string {
  return typeof s === 'string' && DECIMAL_RE.test(s);
}

/** price x integer quantity, exact (the scale is kept). */
export function multiply(d: Decimal, quantity: bigint): Decimal {
  return { units: d.units * quantity, scale: d.scale };
}

/** Divide by 10^digits rounding half-up (half away from zero). */
function shiftRoundHalfUp(units: bigint, digits: number): bigint {
  if (digits <= 0) return units * 10n ** BigInt(-digits);
  const div = 10n ** BigInt(digits);
  const neg = units < 0n;
  const abs = neg ? -units : units;
  let q = abs / div;
  if ((abs % div) * 2n >= div) q += 1n;
  return neg ? -q : q;
}

/** A decimal rounded half-up to `minorDigits` places, as integer minor units. */
export function toMinorUnits(d: Decimal, minorDigits: number): bigint {
  return shiftRoundHalfUp(d.units, d.scale - minorDigits);
}

/** Format a decimal exactly, with at least `minScale` fraction digits (trailing zeros beyond it trimmed). */
export function formatDecimal(d: Decimal, minScale = 0): string {
  let { units, scale } = d;
  while (scale > minScale && units % 10n === 0n) {
    units /= 10n;
    scale--;
  }
  if (scale < minScale) {
    units *= 10n ** BigInt(minScale - scale);
    scale = minScale;
  }
  const neg = units < 0n;
  const digits = (neg ? -units : units).toString().padStart(scale + 1, '0');
  const int = digits.slice(0, digits.length - scale);
  const frac = scale ? '.' + digits.slice(digits.length - scale) : '';
  return (neg ? '-' : '') + int + frac;
}

/** Integer minor units as a decimal string in the currency ("1234" cents -> "12.34"; KRW 1234 -> "1234"). */
export function formatMinor(minor: bigint, currency: string): string {
  const digits = minorDigits(currency);
  return formatDecimal({ units: minor, scale: digits }, digits);
}

/** ISO 4217 minor units; the table covers the common ones, Intl answers the rest. */
const MINOR: Record<string, number> = {
  USD: 2,
  EUR: 2,
  GBP: 2,
  CHF: 2,
  CAD: 2,
  AUD: 2,
  CNY: 2,
  INR: 2,
  SGD: 2,
  HKD: 2,
  SEK: 2,
  NOK: 2,
  DKK: 2,
  BRL: 2,
  MXN: 2,
  KRW: 0,
  JPY: 0,
  VND: 0,
  CLP: 0,
  ISK: 0,
  TWD: 2,
  BHD: 3,
  KWD: 3,
  OMR: 3,
  JOD: 3,
  TND: 3,
};

export function minorDigits(currency: string): number {
  if (!/^[A-Z]{3}$/.test(currency)) throw new MoneyError(`not an ISO 4217 currency code: ${quote(currency)}`);
  const known = MINOR[currency];
  if (known !== undefined) return known;
  try {
    const f = new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions();
    return f.maximumFractionDigits ?? 2;
  } catch {
    throw new MoneyError(`unknown currency: ${currency}`);
  }
}

/** Line amount: price x quantity, rounded half-up to the currency's minor unit. */
export function lineAmountMinor(unitPrice: string, quantity: bigint, currency: string): bigint {
  return toMinorUnits(multiply(parseDecimal(unitPrice), quantity), minorDigits(currency));
}

/** a + b, exact (scales aligned to the larger one). */
export function addDecimal(a: Decimal, b: Decimal): Decimal {
  const scale = Math.max(a.scale, b.scale);
  return { units: a.units * 10n ** BigInt(scale - a.scale) + b.units * 10n ** BigInt(scale - b.scale), scale };
}

export const ZERO: Decimal = { units: 0n, scale: 0 };

/** The larger of a and b, exact (scales aligned as addDecimal does). */
export function maxDecimal(a: Decimal, b: Decimal): Decimal {
  const scale = Math.max(a.scale, b.scale);
  return a.units * 10n ** BigInt(scale - a.scale) >= b.units * 10n ** BigInt(scale - b.scale) ? a : b;
}

/** Exact decimal string of a Decimal (trailing zeros trimmed). */
export function decimalString(d: Decimal): string {
  return formatDecimal(d, 0);
}
