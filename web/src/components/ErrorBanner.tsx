import { describeError, type ExecutionError } from '../services/errors';

export function ErrorBanner({ error }: { error: ExecutionError }) {
  const { title, detail } = describeError(error);
  return (
    <div
      className={`alert ${error.isNetwork ? 'alert-warning' : 'alert-error'}`}
      role="alert"
      data-testid="execution-error"
      data-code={error.code}
    >
      <strong data-testid="execution-error-title">{title}</strong>
      <span data-testid="execution-error-detail">{detail}</span>
      <code className="error-code">
        {error.code}
        {error.status > 0 && error.status !== 200 ? ` · HTTP ${error.status}` : ''}
      </code>
    </div>
  );
}
