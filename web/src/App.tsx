import { signOut, type User } from 'firebase/auth';
import { useEffect, useState } from 'react';
import { BrowserRouter, NavLink, Route, Routes, useLocation, useMatch, useNavigate } from 'react-router';
import { ComparisonPage } from './components/ComparisonPage';
import { ConversationPage } from './components/ConversationPage';
import { DocumentsPage } from './components/DocumentsPage';
import { HistoryPage } from './components/HistoryPage';
import { NotFound } from './components/NotFound';
import { PromptEditorPage, PromptPage } from './components/PromptPage';
import { PromptList } from './components/PromptList';
import { SignIn } from './components/SignIn';
import { auth, db } from './firebase';
import { useAuth } from './hooks/useAuth';
import { useDocuments, useUploads } from './hooks/useDocuments';
import { watchPrompts } from './services/prompts';
import type { Prompt } from './types';

const tabClass = ({ isActive }: { isActive: boolean }) => `tab${isActive ? ' active' : ''}`;

export function Workspace({ user }: { user: User }) {
  const [prompts, setPrompts] = useState<Prompt[]>([]);
  const [loadError, setLoadError] = useState<string | null>(null);
  const navigate = useNavigate();
  const { pathname } = useLocation();
  const selectedId = useMatch('/prompts/:promptId/*')?.params.promptId ?? null;
  // On a narrow screen the prompt list is the home page, and elsewhere a drawer behind a button.
  const [drawer, setDrawer] = useState(false);
  const [drawerPath, setDrawerPath] = useState(pathname);
  if (drawerPath !== pathname) {
    setDrawerPath(pathname);
    setDrawer(false);
  }
  const getIdToken = () => user.getIdToken();
  const documents = useDocuments(user.uid);
  const uploads = useUploads(getIdToken);

  useEffect(
    () =>
      watchPrompts(
        db,
        user.uid,
        (list) => {
          setPrompts(list);
          setLoadError(null);
        },
        (e) => setLoadError(e.message),
      ),
    [user.uid],
  );

  const home = pathname === '/';
  return (
    <div className={`layout${home ? ' at-home' : ''}${drawer ? ' drawer-open' : ''}`}>
      <header className="topbar">
        <span className="brand">
          <span className="logo" aria-hidden="true">
            ◆
          </span>{' '}
          RAG Prompt Library
        </span>
        <nav className="tabs" aria-label="Pages">
          {!home && (
            <button
              type="button"
              className="tab drawer-toggle"
              aria-expanded={drawer}
              aria-controls="prompt-list"
              onClick={() => setDrawer((d) => !d)}
              data-testid="drawer-toggle"
            >
              {drawer ? '✕ Prompts' : '☰ Prompts'}
            </button>
          )}
          <NavLink to="/" end className={({ isActive }) => tabClass({ isActive: isActive || selectedId !== null })} data-testid="nav-prompts">
            Prompts
          </NavLink>
          <NavLink to="/history" className={tabClass} data-testid="nav-history">
            History
          </NavLink>
          <NavLink to="/documents" className={tabClass} data-testid="nav-documents">
            Documents
          </NavLink>
        </nav>
        <span className="spacer" />
        <span className="muted small" data-testid="user-email">
          {user.email}
        </span>
        <button type="button" className="btn btn-small btn-ghost" onClick={() => void signOut(auth)} data-testid="sign-out">
          Sign out
        </button>
      </header>
      <PromptList
        prompts={prompts}
        uid={user.uid}
        selectedId={selectedId}
        onSelect={(id) => navigate(`/prompts/${id}`)}
        onNew={() => navigate('/prompts/new')}
      />
      <main className="main">
        {loadError && <div className="alert alert-error">Could not load prompts: {loadError}</div>}
        <Routes>
          <Route
            path="/"
            element={
              <div className="card empty home-hint" data-testid="home">
                <h2>Pick a prompt</h2>
                <p className="muted">Choose one on the left, or create a new one, then run it and watch the answer stream in.</p>
              </div>
            }
          />
          <Route path="/prompts/new" element={<PromptEditorPage user={user} documents={documents} isNew />} />
          <Route path="/prompts/:promptId" element={<PromptPage user={user} documents={documents} />} />
          <Route path="/prompts/:promptId/edit" element={<PromptEditorPage user={user} documents={documents} isNew={false} />} />
          <Route path="/runs/:executionId" element={<ConversationPage user={user} prompts={prompts} />} />
          <Route path="/comparisons/:comparisonId" element={<ComparisonPage user={user} prompts={prompts} />} />
          <Route path="/history" element={<HistoryPage user={user} prompts={prompts} />} />
          <Route
            path="/documents"
            element={<DocumentsPage documents={documents} uploads={uploads} getIdToken={getIdToken} />}
          />
          <Route path="*" element={<NotFound what="page" />} />
        </Routes>
      </main>
    </div>
  );
}

/** Every page has a URL (docs/web.md "Routes"); a deep link opened signed out opens after sign-in. */
export function App() {
  const { user, loading } = useAuth();
  return (
    <BrowserRouter>
      {loading ? <div className="loading">Loading…</div> : user ? <Workspace user={user} /> : <SignIn />}
    </BrowserRouter>
  );
}
