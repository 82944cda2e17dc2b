-- 0008: safe at the edge (#12).

-- Callback replays are told by the provider's notice id (callback_notices) and the
-- signature's timestamp window, no longer by the signature's bytes (payments/callbacks.py).
DROP TABLE callback_signatures;
