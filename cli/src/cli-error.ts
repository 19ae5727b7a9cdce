/**
 * An error the CLI reports as one line (`sbx: <message>`) and exits with `exitCode`: 125 for
 * `sbx run` failing by itself (Docker's convention), 1 for the other commands, 2 for bad usage.
 */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** Bad flags or arguments: Docker answers these with its usage hint. */
export class UsageError extends CliError {
  constructor(message: string, readonly command: string) {
    super(`${message}\nSee 'sbx ${command} --help'.`, 125);
    this.name = 'UsageError';
  }
}
