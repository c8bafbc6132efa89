import type { User } from 'firebase/auth';
import { useNavigate, useParams } from 'react-router';
import { db } from '../firebase';
import { useComparisonDoc, useRunsWhere } from '../hooks/useRuns';
import { markWinner, preferredModelWrites } from '../services/comparisons';
import type { Prompt } from '../types';
import { ComparisonDetail } from './ComparisonView';
import { RunFollowUp } from './FollowUpBox';
import { NotFound, PageLoading } from './NotFound';

/** `/comparisons/:comparisonId`: the columns side by side from the records, with the winner. */
export function ComparisonPage({ user, prompts }: { user: User; prompts: Prompt[] }) {
  const { comparisonId = '' } = useParams();
  const navigate = useNavigate();
  const comparison = useComparisonDoc(comparisonId);
  const runs = useRunsWhere(user.uid, 'comparison_id', comparison ? comparisonId : null);
  if (comparison === undefined) return <PageLoading />;
  if (comparison === null) return <NotFound what="comparison" />;
  const prompt = prompts.find((p) => p.id === comparison.prompt_id);
  return (
    <section className="card" data-testid="comparison-page">
      {runs.error && <div className="alert alert-error">Could not load its runs: {runs.error}</div>}
      {runs.rows === undefined ? (
        <PageLoading />
      ) : (
        <ComparisonDetail
          id={comparisonId}
          records={runs.rows}
          comparison={comparison}
          onWinner={(id, model, executionId) =>
            markWinner(db, {
              comparisonId: id,
              model,
              executionId,
              promptWrites: prompt ? preferredModelWrites(prompt, user.uid, model) : [],
            })
          }
          onClose={() => navigate(prompt ? `/prompts/${prompt.id}` : '/history')}
          followUp={(id, m) => <RunFollowUp key={id} executionId={id} model={m} compact />}
        />
      )}
    </section>
  );
}
