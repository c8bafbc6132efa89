import type { ReactNode } from 'react';
import { Link, useInRouterContext } from 'react-router';

/**
 * A link to one of the app's routes. Panels that render it are also tested alone, without a
 * router: there it is a plain anchor to the same address.
 */
export function RouteLink({ to, className, testId, children }: { to: string; className?: string; testId?: string; children: ReactNode }) {
  if (useInRouterContext()) {
    return (
      <Link to={to} className={className} data-testid={testId}>
        {children}
      </Link>
    );
  }
  return (
    <a href={to} className={className} data-testid={testId}>
      {children}
    </a>
  );
}
