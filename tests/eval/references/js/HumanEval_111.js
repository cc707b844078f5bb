  const counts = {};
  for (const w of test.split(" ")) if (w) counts[w] = (counts[w] || 0) + 1;
  const most = Math.max(0, ...Object.values(counts));
  const out = {};
  for (const [k, v] of Object.entries(counts)) if (v === most) out[k] = v;
  return out;
}
