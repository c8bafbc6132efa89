import { allFailed, attemptsOf } from '../services/attempts';
import { describeError, type ErrorSubject, type ExecutionError } from '../services/errors';

export function ErrorBanner({
  error,
  subject = 'run',
  testId = 'execution-error',
}: {
  error: ExecutionError;
  subject?: ErrorSubject;
  testId?: string;
}) {
  const { title, detail } = describeError(error, subject);
  // A run whose fallbacks all failed carries every attempt; the error alone names the last model.
  const tried = allFailed(attemptsOf(error.details?.attempts));
  return (
    <div
      className={`alert ${error.isNetwork ? 'alert-warning' : 'alert-error'}`}
      role="alert"
      data-testid={testId}
      data-code={error.code}
    >
      <strong data-testid={`${testId}-title`}>{title}</strong>
      <span data-testid={`${testId}-detail`}>{detail}</span>
      {tried && <span data-testid={`${testId}-tried`}>{tried}</span>}
      <code className="error-code">
        {error.code}
        {error.status > 0 && error.status !== 200 ? ` · HTTP ${error.status}` : ''}
      </code>
    </div>
  );
}
