-- Trust on real data (issue 12): gaps listed with every fit, losses on the OHLC path beside the
-- close-to-close ones, and the VaR/ES forecasts an expected-shortfall backtest needs.
ALTER TABLE calib.fits ADD COLUMN note VARCHAR;        -- e.g. refit from the nested model
ALTER TABLE calib.fits ADD COLUMN gap_policy VARCHAR;  -- how multi-day returns were treated
ALTER TABLE calib.fits ADD COLUMN gaps JSON;           -- [{date, span_days, missing_days, return, action}]

ALTER TABLE bt.daily ADD COLUMN loss_path DOUBLE;      -- worst loss at the OHLC points within the MPOR
ALTER TABLE bt.daily ADD COLUMN breach_path BOOLEAN;   -- loss_path > margin
ALTER TABLE bt.daily ADD COLUMN var_es DOUBLE;         -- ES models: VaR at the ES level, unbuffered
ALTER TABLE bt.daily ADD COLUMN es DOUBLE;             -- ES models: ES at its level, unbuffered

ALTER TABLE bt.loss_cache ADD COLUMN loss_path DOUBLE;
ALTER TABLE bt.margin_cache ADD COLUMN var_es DOUBLE;
ALTER TABLE bt.margin_cache ADD COLUMN es DOUBLE;
