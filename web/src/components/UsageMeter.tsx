import { useEffect, useState } from 'react';
import { config } from '../config';
import { db } from '../firebase';
import { watchUserLimits } from '../services/prompts';

const fmt = new Intl.NumberFormat('en-US');

/** Today's tokens against the daily budget, live from `user_limits/{uid}`. */
export function UsageMeter({ uid, budget = config.dailyTokenBudget }: { uid: string; budget?: number }) {
  const [used, setUsed] = useState<number | null>(null);
  const [failed, setFailed] = useState(false);

  useEffect(
    () =>
      watchUserLimits(
        db,
        uid,
        (limits) => {
          setUsed(limits.tokensToday);
          setFailed(false);
        },
        () => setFailed(true),
      ),
    [uid],
  );

  if (failed) return null;
  return <UsageMeterView used={used} budget={budget} />;
}

export function UsageMeterView({ used, budget }: { used: number | null; budget: number }) {
  const shown = used ?? 0;
  const text = used === null ? '…' : `${fmt.format(shown)} / ${fmt.format(budget)}`;
  return (
    <span className="usage-meter" data-testid="usage-meter" data-used={used ?? ''} data-budget={budget}>
      <meter
        min={0}
        max={budget}
        low={budget * 0.75}
        high={budget * 0.9}
        optimum={0}
        value={Math.min(shown, budget)}
        aria-label="Tokens used today"
      />
      <span className="small muted" title="Tokens used today (UTC) against the daily budget">
        {text} tokens today
      </span>
    </span>
  );
}
