"""Runtime settings, validated once into a frozen object."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RuntimeConfig(BaseModel):
    """How workers poll, buffer, lease, commit and stop.

    The defaults suit real brokers; tests shorten the timings.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    lease_s: float = Field(30.0, gt=0, description="Claim lease; renewed every lease_s/3.")
    poll_batch: int = Field(500, ge=1, description="Most messages fetched per poll.")
    poll_timeout_s: float = Field(0.1, gt=0, description="Longest wait of one poll.")
    max_buffered: int = Field(
        2000, ge=1, description="Events queued or running before partitions are paused."
    )
    resume_ratio: float = Field(
        0.5, gt=0, le=1, description="Resume fetching when buffered falls to this share."
    )
    commit_interval_s: float = Field(0.2, gt=0, description="How often offsets are committed.")
    shutdown_grace_s: float = Field(
        10.0, ge=0, description="How long running events may finish on shutdown."
    )
    revoke_grace_s: float = Field(
        5.0, ge=0, description="How long running events of revoked partitions may finish."
    )
    session_timeout_s: float = Field(
        10.0, gt=0, description="Embedded log: a silent member leaves its group after this."
    )
    heartbeat_s: float = Field(1.0, gt=0, description="Embedded log: membership refresh period.")
    partitions: int = Field(8, ge=1, description="Embedded log: partitions of new topics.")
    lag_interval_s: float = Field(
        5.0, gt=0, description="How often consumer lag is measured for on_poll middleware."
    )
    park_sweep_s: float = Field(
        1.0, gt=0, description="Strict ordering: how often released parked events are resumed."
    )
    user_threads: int = Field(
        32,
        ge=1,
        description="Threads that run synchronous user code (effects, steps, reconcile, tools); "
        "such code never runs on the event loop.",
    )
    loop_stall_s: float = Field(
        1.0,
        gt=0,
        description="An event-loop stall longer than this is logged and counted "
        "(agentstream_loop_stalls_total).",
    )
    wake_poll_s: float = Field(
        0.2,
        gt=0,
        description="How often the journal is asked for waiting events that are due (signal "
        "arrived, timer fired); bounds how late a timer fires.",
    )
    wake_batch: int = Field(
        200, ge=1, description="Most due waiting events resumed by one wake-up round."
    )
    retention_s: float = Field(
        7 * 86400.0,
        gt=0,
        description="Journal retention: completed history older than this may be pruned.",
    )
    broker_retention_s: float = Field(
        7 * 86400.0,
        gt=0,
        description="How long the broker can redeliver a message (Kafka retention.ms, the SQS "
        "retention period); pruning never goes below it, so dedup still recognises every event.",
    )
    publish_unhealthy_s: float = Field(
        60.0,
        gt=0,
        description="Outputs waiting and none published for this long: the worker reports "
        "itself unhealthy (/healthz, status, an error log line).",
    )
    publish_exit_s: float = Field(
        300.0,
        gt=0,
        description="Outputs waiting and none published for this long: the worker exits "
        "non-zero, so a supervisor restarts it.",
    )

    @model_validator(mode="after")
    def _check(self) -> RuntimeConfig:
        if self.heartbeat_s >= self.session_timeout_s:
            raise ValueError("heartbeat_s must be shorter than session_timeout_s")
        if self.publish_exit_s < self.publish_unhealthy_s:
            raise ValueError("publish_exit_s must not be shorter than publish_unhealthy_s")
        return self
