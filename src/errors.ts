/**
 * Errors that services throw. The HTTP layer maps each to its status code and body; the CLI prints
 * the message. Nothing here knows about HTTP beyond the status code number.
 */
export interface FieldProblem {
  /** Where the problem is, e.g. `body.name`, `query.limit`, `params.user`. */
  field: string;
  /** What is wrong and how to fix it. */
  message: string;
}

export class AppError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly details?: {
      problems?: FieldProblem[];
      headers?: Record<string, string>;
      /** Further fields of the error body (e.g. `oldestSeq` of an event-log gap). */
      extra?: Record<string, string | number>;
    },
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** 400 with a validation result listing every problem. */
export class ValidationError extends AppError {
  constructor(
    readonly problems: FieldProblem[],
    summary?: string,
  ) {
    super(400, summary ?? summarize(problems), { problems });
  }
}

export class UnauthorizedError extends AppError {
  constructor(message = 'invalid credentials') {
    super(401, message);
  }
}

export class ForbiddenError extends AppError {
  constructor(message = 'not allowed') {
    super(403, message);
  }
}

export class NotFoundError extends AppError {
  constructor(message = 'not found') {
    super(404, message);
  }
}

export class ConflictError extends AppError {
  constructor(message: string) {
    super(409, message);
  }
}

export class NotImplementedError extends AppError {
  constructor(message = 'not implemented yet') {
    super(501, message);
  }
}

function summarize(problems: FieldProblem[]): string {
  if (problems.length === 0) return 'invalid request';
  const first = problems[0]!;
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
  return `${first.field}: ${first.message}${more}`;
}
