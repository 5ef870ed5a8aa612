/**
 * A user mistake (bad flag, missing file, unknown customer): printed as one line with a hint,
 * exit code 2, never a stack trace. Anything else is a bug or an outage: exit 1.
 */
export class UserError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'UserError';
  }
}
