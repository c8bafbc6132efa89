// @vitest-environment jsdom
import { cleanup, fireEvent, render, screen } from '@testing-library/react';
import type { User } from 'firebase/auth';
import { MemoryRouter, useLocation } from 'react-router';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Workspace } from './App';
import type { Prompt } from './types';

// The pages are tested on their own; here each only says which it is and what the URL gave it.
vi.mock('./firebase', () => ({ auth: {}, db: {} }));
vi.mock('./hooks/useDocuments', () => ({
  useDocuments: () => ({ rows: [], error: null }),
  useUploads: () => ({ items: [], add: () => undefined, dismiss: () => undefined }),
}));
vi.mock('./services/prompts', () => ({
  watchPrompts: (_db: unknown, _uid: string, onChange: (p: Prompt[]) => void) => {
    onChange([PROMPT]);
    return () => undefined;
  },
}));
vi.mock('./components/PromptPage', async () => {
  const { useParams } = await vi.importActual<typeof import('react-router')>('react-router');
  return {
    PromptPage: () => <p data-testid="page">prompt {useParams().promptId}</p>,
    PromptEditorPage: ({ isNew }: { isNew: boolean }) => (
      <p data-testid="page">{isNew ? 'new prompt' : `edit ${useParams().promptId}`}</p>
    ),
  };
});
vi.mock('./components/ConversationPage', async () => {
  const { useParams } = await vi.importActual<typeof import('react-router')>('react-router');
  return { ConversationPage: () => <p data-testid="page">run {useParams().executionId}</p> };
});
vi.mock('./components/ComparisonPage', async () => {
  const { useParams } = await vi.importActual<typeof import('react-router')>('react-router');
  return { ComparisonPage: () => <p data-testid="page">comparison {useParams().comparisonId}</p> };
});
vi.mock('./components/HistoryPage', () => ({ HistoryPage: () => <p data-testid="page">history</p> }));
vi.mock('./components/DocumentsPage', () => ({ DocumentsPage: () => <p data-testid="page">documents</p> }));

const PROMPT: Prompt = {
  id: 'p1',
  owner_uid: 'u1',
  title: 'Harbour guide',
  content: 'Describe it',
  variables: [],
  public: false,
  updatedAtMs: null,
};
const USER = { uid: 'u1', email: 'a@example.com', getIdToken: async () => 'token' } as unknown as User;

function Where() {
  return <output data-testid="where">{useLocation().pathname}</output>;
}

function at(path: string) {
  const view = render(
    <MemoryRouter initialEntries={[path]}>
      <Workspace user={USER} />
      <Where />
    </MemoryRouter>,
  );
  return { view, layout: view.container.querySelector('.layout')! };
}

afterEach(cleanup);

describe('routes', () => {
  it.each([
    ['/prompts/p1', 'prompt p1'],
    ['/prompts/new', 'new prompt'],
    ['/prompts/p1/edit', 'edit p1'],
    ['/runs/r1', 'run r1'],
    ['/comparisons/c1', 'comparison c1'],
    ['/history', 'history'],
    ['/documents', 'documents'],
  ])('%s opens its page with the id it names', (path, page) => {
    at(path);
    expect(screen.getByTestId('page').textContent).toBe(page);
  });

  it('says "not found" at an address that is no page, and shows the list at home', () => {
    at('/prompt/p1');
    expect(screen.getByTestId('not-found').getAttribute('data-what')).toBe('page');
    cleanup();
    at('/');
    expect(screen.getByTestId('home')).toBeTruthy();
  });

  it('marks the tab of the page shown, the prompts tab on a prompt’s pages', () => {
    at('/prompts/p1/edit');
    expect(screen.getByTestId('nav-prompts').className).toContain('active');
    expect(screen.getByTestId('nav-history').className).not.toContain('active');
    cleanup();
    at('/history');
    expect(screen.getByTestId('nav-history').getAttribute('aria-current')).toBe('page');
    expect(screen.getByTestId('nav-prompts').className).not.toContain('active');
  });

  it('goes to a prompt’s URL when it is picked, and to the editor’s for a new one', () => {
    at('/history');
    fireEvent.click(screen.getByText('Harbour guide'));
    expect(screen.getByTestId('where').textContent).toBe('/prompts/p1');
    expect(screen.getByTestId('page').textContent).toBe('prompt p1');
    fireEvent.click(screen.getByTestId('new-prompt-button'));
    expect(screen.getByTestId('where').textContent).toBe('/prompts/new');
  });
});

describe('the prompt list on a narrow screen', () => {
  it('is the home page: no drawer button there', () => {
    const { layout } = at('/');
    expect(layout.classList.contains('at-home')).toBe(true);
    expect(screen.queryByTestId('drawer-toggle')).toBeNull();
  });

  it('opens as a drawer elsewhere and closes when the page changes', () => {
    const { layout } = at('/runs/r1');
    const toggle = screen.getByTestId('drawer-toggle');
    expect(layout.classList.contains('drawer-open')).toBe(false);
    fireEvent.click(toggle);
    expect(layout.classList.contains('drawer-open')).toBe(true);
    expect(toggle.getAttribute('aria-expanded')).toBe('true');
    fireEvent.click(screen.getByText('Harbour guide'));
    expect(screen.getByTestId('where').textContent).toBe('/prompts/p1');
    expect(layout.classList.contains('drawer-open')).toBe(false);
  });
});
