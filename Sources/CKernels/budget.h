// Internal: decode's time budget (nb_time_budget_enable), kept by pool.c.
#pragma once
#include <stdint.h>

/// The clock in nanoseconds when the budget is on, else 0 (one relaxed load).
uint64_t nb_budget_start(void);
/// Adds the time since `start` (from nb_budget_start; 0: nothing) to the products' share
/// (`attention` 0) or attention's (1).
void nb_budget_add(uint64_t start, int attention);
