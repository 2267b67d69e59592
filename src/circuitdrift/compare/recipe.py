"""What each method's optimizer step is made of: RL's groups with a gradient, and the compute per step.

GRPO's advantage is a reward minus its group's mean, so a group whose G
completions all got the same reward contributes no gradient. With a small G
and a task the model mostly gets right (or mostly wrong) most groups are like
that, and "RL learns slower" then partly measures the recipe. From the rollout
monitor's windows (train/monitor.py: groups and the share with reward
variance, pooled over consecutive generation batches) this module states, per
window and per run, the share of groups with zero reward variance and the
effective prompts per step (groups with variance per generation batch). And
it states each method's compute per step from the config: SFT trains on
``prompts_per_step`` teacher-forced (prompt, label) sequences; RL samples G
completions for each prompt (at most ``max_completion_length`` tokens each)
and scores them.
"""

from __future__ import annotations

from circuitdrift.compare.stats import is_number, stat


def window_recipe(window: dict) -> dict:
    """One monitor window: steps it covers, zero-variance share, effective prompts per generation batch."""
    groups, share = window.get("groups"), window.get("share_groups_with_variance")
    batches = window["last_batch"] - window["first_batch"] + 1 if "first_batch" in window else None
    effective = share * groups / batches if is_number(share) and groups and batches else None
    return {"first_step": window.get("first_step"), "last_step": window.get("last_step"),
            "zero_variance_share": 1.0 - share if is_number(share) else None,
            "effective_prompts_per_step": effective, "groups_per_step": groups / batches if groups and batches
            else None}


def run_recipe(summary: dict) -> dict:
    """A run's rollout summary (results.json "rollouts" entry) -> its windows and their means over windows."""
    windows = [window_recipe(w) for w in summary.get("windows", [])]

    def mean(key):
        values = [w[key] for w in windows if is_number(w[key])]
        return sum(values) / len(values) if values else None

    return {"windows": windows, "zero_variance_share": mean("zero_variance_share"),
            "effective_prompts_per_step": mean("effective_prompts_per_step")}


def recipe_summary(rollouts: dict) -> dict:
    """Per RL run ("method/lr/seed") its recipe, and per (method, lr) the stat over seeds of both shares."""
    runs = {key: run_recipe(summary) for key, summary in sorted(rollouts.items())}
    grouped: dict[str, list[dict]] = {}
    for key, recipe in runs.items():
        grouped.setdefault(key.rsplit("/", 1)[0], []).append(recipe)
    by_rate = {key: {"zero_variance_share": stat(r["zero_variance_share"] for r in recipes),
                     "effective_prompts_per_step": stat(r["effective_prompts_per_step"] for r in recipes)}
               for key, recipes in grouped.items()}
    return {"runs": runs, "by_learning_rate": by_rate}


def compute_per_step(prompts_per_step: int, num_generations: int, max_completion_length: int,
                     methods: list[str]) -> dict:
    """Each method's work per optimizer step, from the config (the same prompts for every method)."""
    out = {}
    for method in methods:
        if method == "rl":
            out[method] = {"prompts": prompts_per_step, "completions_sampled": prompts_per_step * num_generations,
                           "generated_tokens_at_most": prompts_per_step * num_generations * max_completion_length,
                           "sequences_trained_on": prompts_per_step * num_generations}
        else:
            out[method] = {"prompts": prompts_per_step, "completions_sampled": 0, "generated_tokens_at_most": 0,
                           "sequences_trained_on": prompts_per_step}
    return out
