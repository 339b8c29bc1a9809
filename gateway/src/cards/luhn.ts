import { randomInt } from "node:crypto";

/** The Luhn check digit for a string of digits (the digit to append). */
export function luhnCheckDigit(body: string): number {
  let sum = 0;
  // From the right, every second digit of the body (the first one next to the check digit) doubles.
  for (let i = 0; i < body.length; i++) {
    let d = body.charCodeAt(body.length - 1 - i) - 48;
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return (10 - (sum % 10)) % 10;
}

export function luhnValid(number: string): boolean {
  return /^[0-9]{2,}$/.test(number) && luhnCheckDigit(number.slice(0, -1)) === Number(number.at(-1));
}

/**
 * A card number: the programme's prefix, random digits from the system's CSPRNG (never a counter,
 * so numbers cannot be guessed from one another), and a Luhn check digit; `length` digits in all.
 */
export function generateCardNumber(prefix: string, length = 16): string {
  let body = prefix;
  while (body.length < length - 1) body += String(randomInt(10));
  return body + String(luhnCheckDigit(body));
}
