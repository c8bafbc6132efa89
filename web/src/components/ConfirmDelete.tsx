import type { ReactNode } from 'react';

interface Props {
  /** The dialog's accessible name, e.g. "Delete prompt". */
  label: string;
  /** What will be lost, in words. */
  children: ReactNode;
  /** The button's words, e.g. "Delete prompt". */
  confirmLabel: string;
  deleting: boolean;
  onConfirm: () => void;
  onCancel: () => void;
  testId: string;
  confirmTestId: string;
  cancelTestId?: string;
  /** Shown under the buttons (an error from the last try, say). */
  after?: ReactNode;
}

/** The one confirmation before anything is deleted: "Keep it" has the focus. */
export function ConfirmDelete(props: Props) {
  const { label, children, confirmLabel, deleting, onConfirm, onCancel } = props;
  return (
    <div className="alert alert-warning confirm" role="alertdialog" aria-label={label} data-testid={props.testId}>
      <span>{children}</span>
      <span className="row">
        <button
          type="button"
          className="btn btn-small btn-danger"
          onClick={onConfirm}
          disabled={deleting}
          data-testid={props.confirmTestId}
        >
          {deleting ? 'Deleting…' : confirmLabel}
        </button>
        <button
          type="button"
          className="btn btn-small"
          onClick={onCancel}
          disabled={deleting}
          autoFocus
          data-testid={props.cancelTestId}
        >
          Keep it
        </button>
      </span>
      {props.after}
    </div>
  );
}
