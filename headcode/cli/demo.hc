# Hand-written attention programs, one per kind of head seen in small language models.
# `headcode demo` shows each on a sentence; `headcode fmt` prints their canonical form.

# Attends to the token right before the query (early-layer "previous token" heads).
previous = prev(1)

# An attention sink: everything on the first token.
sink = bos

# Most weight on the first token, some on the query itself.
sink_and_self = 0.7*bos + 0.3*self

# The latest punctuation mark, or the first token when there is none yet.
latest_punct = last(punct) else bos

# Earlier copies of the query's token (duplicate-token heads).
duplicate = same_token else bos

# The token after an earlier copy of the query's token (induction heads).
induction_head = induction else bos

# A sink plus a bonus for punctuation and for recent keys, as one softmax.
scored_sink = softmax(4*bos + 1.2*key.punct - 0.7*log_dist + 2*same_token)

# Which words a head likes: a key-side word table.
likes_names = softmax(2*bos + key.word{tom: 2.5, lily: 2.5, she: 1, he: 1} - 0.3*dist)
