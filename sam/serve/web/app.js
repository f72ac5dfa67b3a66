// The sam serve web app: plain JavaScript, no build step, no dependency.
//
// One image at a time: it is uploaded once (POST /v1/images: the server
// runs the image encoder and caches the embedding), then every click,
// box or key press is a prompt (POST /v1/images/{id}/predict, masks as
// COCO RLE), answered by the mask decoder alone. Three canvases are
// stacked: the image, the masks, and the marks (points, box, cursor).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const els = {
    file: $("file"), open: $("open"), undo: $("undo"), reset: $("reset"), auto: $("auto"),
    dlMask: $("download-mask"), dlCoco: $("download-coco"), stage: $("stage"), hint: $("hint"),
    image: $("image"), mask: $("mask"), marks: $("marks"), candidates: $("candidates"),
    autoList: $("auto-list"), status: $("status"), model: $("model"), token: $("token"),
    tokenRow: $("token-row"), pps: $("opt-pps"), iou: $("opt-iou"), stab: $("opt-stab"),
  };

  // Distinct colours (as sam/imgproc.MaskColor): the interactive mask is
  // the first; automatic masks cycle through them all.
  const palette = [[30, 144, 255], [255, 99, 71], [50, 205, 50], [255, 215, 0], [186, 85, 211],
    [0, 206, 209], [255, 140, 0], [255, 105, 180], [124, 252, 0], [70, 130, 180], [210, 105, 30], [154, 205, 50]];

  const state = {
    image: null,     // {id, width, height, name}
    prompt: { points: [], box: null },   // points: [x, y, label]
    result: null,    // the last predict answer's first prediction, with decoded masks
    selected: 0,     // index of the chosen candidate
    history: [],     // earlier {prompt, result, selected}, for undo
    auto: null,      // {records, masks: [{pix, color}], owner: Int32Array}
    hover: -1,
    cursor: null,    // {x, y} keyboard cursor, image pixels
    boxStart: null,  // first corner of a box being made with the keyboard
    drag: null,      // {x0, y0, x1, y1, moved} pointer drag
    busy: 0,
    seq: 0,          // request sequence: a late answer to an older prompt is dropped
    lastRequest: null,
    autoDefaults: null,
  };
  let token = sessionStorage.getItem("sam-token") || "";

  function setStatus(text, error) {
    els.status.textContent = text;
    els.status.classList.toggle("error", !!error);
  }

  // call sends a request with the token and returns the JSON answer;
  // an error answer ({error, code}) becomes a thrown Error.
  async function call(method, path, body, contentType) {
    const headers = {};
    if (token) headers.Authorization = "Bearer " + token;
    if (contentType) headers["Content-Type"] = contentType;
    const res = await fetch(path, { method, body, headers });
    let data = null;
    try { data = await res.json(); } catch (_) { data = { error: res.statusText, code: "http_" + res.status }; }
    if (res.status === 401) {
      els.tokenRow.hidden = false;
      els.token.focus();
    }
    if (!res.ok) {
      const err = new Error((data && data.error) || res.statusText);
      err.code = data && data.code; err.status = res.status;
      throw err;
    }
    return data;
  }

  // decodeRLE turns COCO compressed RLE ({size: [h, w], counts}) into a
  // row-major Uint8Array (1 inside). The counts string is pycocotools'
  // rleToString: 5-bit groups offset by 48, a continuation bit 0x20, the
  // sign in 0x10 of the last group, each count after the second stored
  // as the difference to the one two before; runs alternate 0, 1, ...
  // over the mask in column-major order.
  function decodeRLE(rle) {
    const [h, w] = rle.size;
    const s = rle.counts;
    const counts = [];
    let p = 0;
    while (p < s.length) {
      let x = 0, k = 0, more = 1;
      while (more) {
        const c = s.charCodeAt(p) - 48;
        x |= (c & 0x1f) << (5 * k);
        more = c & 0x20;
        p++; k++;
        if (!more && (c & 0x10)) x |= -1 << (5 * k);
      }
      if (counts.length > 2) x += counts[counts.length - 2];
      counts.push(x);
    }
    const pix = new Uint8Array(w * h);
    let i = 0, v = 0;
    for (const n of counts) {
      if (v) {
        for (let j = i; j < i + n; j++) pix[(j % h) * w + Math.floor(j / h)] = 1;
      }
      i += n; v ^= 1;
    }
    return pix;
  }

  // encodeRLE is the inverse, for masks the COCO download holds.
  function encodeRLE(pix, w, h) {
    const counts = [];
    let run = 0, v = 0;
    for (let x = 0; x < w; x++) {
      for (let y = 0; y < h; y++) {
        const b = pix[y * w + x];
        if (b !== v) { counts.push(run); run = 0; v = b; }
        run++;
      }
    }
    counts.push(run);
    let s = "";
    for (let i = 0; i < counts.length; i++) {
      let x = counts[i];
      if (i > 2) x -= counts[i - 2];
      let more = 1;
      while (more) {
        let c = x & 0x1f;
        x >>= 5;
        more = (c & 0x10) ? x !== -1 : x !== 0;
        if (more) c |= 0x20;
        s += String.fromCharCode(c + 48);
      }
    }
    return { size: [h, w], counts: s };
  }

  // sizeCanvases gives the layers the image's pixel size. A small image
  // is shown enlarged by a whole factor (up to about 640 px on its long
  // side), so that a click can aim at one pixel; the CSS still shrinks it
  // to the page's width. Clicks map through the displayed size (toImage).
  function sizeCanvases(w, h) {
    for (const c of [els.image, els.mask, els.marks]) { c.width = w; c.height = h; }
    const scale = Math.max(1, Math.floor(640 / Math.max(w, h)));
    els.image.style.width = scale > 1 ? `${w * scale}px` : "";
  }

  // toImage maps a pointer event to image pixel coordinates (integers:
  // the pixel under the pointer).
  function toImage(ev) {
    const r = els.marks.getBoundingClientRect();
    const W = state.image.width, H = state.image.height;
    const x = Math.floor((ev.clientX - r.left) * W / r.width);
    const y = Math.floor((ev.clientY - r.top) * H / r.height);
    return [Math.min(W - 1, Math.max(0, x)), Math.min(H - 1, Math.max(0, y))];
  }

  async function openFile(file) {
    if (!file) return;
    state.seq++;
    state.image = null; state.result = null; state.auto = null; state.history = [];
    state.prompt = { points: [], box: null };
    updateButtons(); renderCandidates(); renderAutoList();
    setStatus("Uploading " + file.name + " (the encoder runs once per image)…");
    els.hint.textContent = "Encoding…";
    els.hint.hidden = false;
    let bitmap = null;
    try {
      // The server does not apply EXIF orientation (PIL's Image.open does
      // not either): show the pixels as stored, so clicks land where the
      // model sees them.
      bitmap = await createImageBitmap(file, { imageOrientation: "none" });
    } catch (_) { bitmap = null; }
    busy(1);
    try {
      const t0 = performance.now();
      const info = await call("POST", "/v1/images", file, file.type || "application/octet-stream");
      const ms = Math.round(performance.now() - t0);
      state.image = { id: info.id, width: info.width, height: info.height, name: file.name || "image" };
      sizeCanvases(info.width, info.height);
      const ctx = els.image.getContext("2d");
      if (bitmap) ctx.drawImage(bitmap, 0, 0);
      else { ctx.fillStyle = "#555"; ctx.fillRect(0, 0, info.width, info.height); }
      els.hint.hidden = true;
      state.cursor = { x: Math.floor(info.width / 2), y: Math.floor(info.height / 2) };
      draw();
      setStatus(`Ready: ${info.width}×${info.height}, embedding ${info.source} in ${ms} ms. Click on an object.`);
      els.stage.dataset.state = "ready";
      els.stage.setAttribute("aria-label", `Image ${state.image.name}, ${info.width} by ${info.height} pixels. Arrow keys move the cursor, Enter adds a point, b marks box corners.`);
    } catch (err) {
      els.hint.textContent = "Open, drop or paste an image";
      setStatus("Upload failed: " + err.message, true);
    } finally {
      busy(-1);
      updateButtons();
    }
  }

  function busy(d) {
    state.busy += d;
    els.stage.setAttribute("aria-busy", state.busy > 0 ? "true" : "false");
  }

  // predict sends the current prompt: one click gives the 3 candidates
  // (multimask, the official default for an ambiguous prompt); more clicks
  // give one mask refined with the previous answer's logits (mask_input);
  // a box gives one mask.
  async function predict() {
    const img = state.image;
    const pr = state.prompt;
    if (!img) return;
    if (pr.points.length === 0 && !pr.box) {
      state.result = null; draw(); renderCandidates(); updateButtons();
      return;
    }
    const n = pr.points.length + (pr.box ? 1 : 0);
    // One point is ambiguous (a part or the whole?): the 3 candidates. A
    // box, or more points, is not: one mask, as the official notebooks ask.
    const body = { format: "rle", multimask_output: pr.points.length === 1 && !pr.box };
    if (pr.points.length) {
      body.points = pr.points.map((p) => [p[0], p[1]]);
      body.labels = pr.points.map((p) => p[2]);
    }
    if (pr.box) body.box = pr.box;
    const prev = state.history.length ? state.history[state.history.length - 1].result : null;
    if (n > 1 && prev && prev.masks[prev.selected]) body.mask_input = prev.masks[prev.selected].logits;
    const seq = ++state.seq;
    state.lastRequest = body;
    busy(1);
    setStatus("Segmenting…");
    try {
      const t0 = performance.now();
      let res;
      try {
        res = await call("POST", `/v1/images/${img.id}/predict`, JSON.stringify(body), "application/json");
      } catch (err) {
        if (err.code !== "unknown_mask_input" || !body.mask_input) throw err;
        delete body.mask_input; // another replica answered before and forgot: go without
        res = await call("POST", `/v1/images/${img.id}/predict`, JSON.stringify(body), "application/json");
      }
      if (seq !== state.seq) return;
      const p = res.predictions[0];
      state.result = {
        masks: p.masks.map((m) => ({ score: m.score, area: m.area, bbox: m.bbox, rle: m.rle, logits: m.logits, pix: decodeRLE(m.rle) })),
        selected: p.best,
      };
      state.selected = p.best;
      const ms = Math.round(performance.now() - t0);
      draw(); renderCandidates(); updateButtons();
      const m = state.result.masks[state.selected];
      setStatus(`Mask ${state.selected + 1}: score ${m.score.toFixed(3)}, ${m.area} pixels (${ms} ms).`);
      els.stage.dataset.masks = String(++masksShown);
    } catch (err) {
      if (seq === state.seq) setStatus("Segmentation failed: " + err.message, true);
    } finally {
      busy(-1);
    }
  }
  let masksShown = 0;

  function pushPrompt(change) {
    state.history.push({ prompt: clonePrompt(state.prompt), result: state.result && withSelected(state.result), selected: state.selected });
    change(state.prompt);
    updateButtons();
    draw();
    predict();
  }
  function withSelected(r) { return Object.assign({}, r, { selected: state.selected }); }
  function clonePrompt(p) { return { points: p.points.map((q) => q.slice()), box: p.box && p.box.slice() }; }

  function addPoint(x, y, label) {
    if (!state.image) return;
    pushPrompt((p) => p.points.push([x, y, label]));
  }
  function setBox(x0, y0, x1, y1) {
    if (!state.image) return;
    const b = [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)];
    pushPrompt((p) => { p.box = b; });
  }

  function undo() {
    const h = state.history.pop();
    if (!h) return;
    state.seq++;
    state.prompt = h.prompt;
    state.result = h.result;
    state.selected = h.result ? h.selected : 0;
    draw(); renderCandidates(); updateButtons();
    setStatus(state.result ? "Undone." : "Undone: no prompt.");
  }
  function reset() {
    state.seq++;
    state.history = []; state.prompt = { points: [], box: null }; state.result = null; state.boxStart = null;
    draw(); renderCandidates(); updateButtons();
    setStatus("Prompts cleared.");
  }

  function select(i) {
    if (!state.result || i < 0 || i >= state.result.masks.length) return;
    state.selected = i;
    const m = state.result.masks[i];
    draw(); renderCandidates();
    setStatus(`Mask ${i + 1}: score ${m.score.toFixed(3)}, ${m.area} pixels.`);
  }

  // draw repaints the mask and marks layers.
  function draw() {
    const img = state.image;
    if (!img) return;
    const W = img.width, H = img.height;
    const mctx = els.mask.getContext("2d");
    mctx.clearRect(0, 0, W, H);
    if (state.result) {
      paintMasks(mctx, [{ pix: state.result.masks[state.selected].pix, color: palette[0], alpha: 140, outline: true }], W, H);
    } else if (state.auto) {
      const list = state.auto.masks.map((m, i) => ({
        pix: m.pix, color: m.color,
        alpha: state.hover < 0 ? 120 : (i === state.hover ? 190 : 45),
      }));
      paintMasks(mctx, list, W, H);
    }
    drawMarks();
  }

  // paintMasks fills each mask in its colour, later ones over earlier;
  // with outline, the mask's edge pixels (a 4-neighbour outside) are
  // opaque yellow, so the mask shows on an object of its own colour.
  function paintMasks(ctx, list, W, H) {
    const data = ctx.createImageData(W, H);
    const d = data.data;
    for (const m of list) {
      const [r, g, b] = m.color;
      const p = m.pix;
      for (let i = 0; i < p.length; i++) {
        if (!p[i]) continue;
        const o = 4 * i;
        const x = i % W;
        const edge = m.outline && (x === 0 || x === W - 1 || i < W || i >= p.length - W ||
          !p[i - 1] || !p[i + 1] || !p[i - W] || !p[i + W]);
        if (edge) { d[o] = 255; d[o + 1] = 214; d[o + 2] = 0; d[o + 3] = 255; }
        else { d[o] = r; d[o + 1] = g; d[o + 2] = b; d[o + 3] = m.alpha; }
      }
    }
    ctx.putImageData(data, 0, 0);
  }

  function drawMarks() {
    const img = state.image;
    const W = img.width, H = img.height;
    const ctx = els.marks.getContext("2d");
    ctx.clearRect(0, 0, W, H);
    const rad = Math.max(4, Math.round(Math.max(W, H) / 120));
    ctx.lineWidth = Math.max(2, rad / 3);
    const box = state.drag && state.drag.moved ? [state.drag.x0, state.drag.y0, state.drag.x1, state.drag.y1] : state.prompt.box;
    if (box) {
      ctx.strokeStyle = "#ffd33d";
      ctx.strokeRect(Math.min(box[0], box[2]), Math.min(box[1], box[3]), Math.abs(box[2] - box[0]), Math.abs(box[3] - box[1]));
    }
    for (const [x, y, label] of state.prompt.points) {
      ctx.beginPath();
      ctx.arc(x + 0.5, y + 0.5, rad, 0, 2 * Math.PI);
      ctx.fillStyle = label ? "#1a9c3c" : "#d1242f";
      ctx.fill();
      ctx.strokeStyle = "#fff";
      ctx.stroke();
    }
    if (state.boxStart) {
      ctx.strokeStyle = "#ffd33d";
      ctx.setLineDash([4, 3]);
      const c = state.cursor;
      ctx.strokeRect(Math.min(state.boxStart[0], c.x), Math.min(state.boxStart[1], c.y),
        Math.abs(c.x - state.boxStart[0]), Math.abs(c.y - state.boxStart[1]));
      ctx.setLineDash([]);
    }
    if (state.cursor && document.activeElement === els.stage) {
      const { x, y } = state.cursor;
      ctx.strokeStyle = "#fff";
      ctx.lineWidth = Math.max(1, rad / 4);
      ctx.beginPath();
      ctx.moveTo(x + 0.5 - 2 * rad, y + 0.5); ctx.lineTo(x + 0.5 + 2 * rad, y + 0.5);
      ctx.moveTo(x + 0.5, y + 0.5 - 2 * rad); ctx.lineTo(x + 0.5, y + 0.5 + 2 * rad);
      ctx.stroke();
    }
  }

  function renderCandidates() {
    const c = els.candidates;
    c.textContent = "";
    if (!state.result) {
      const p = document.createElement("p");
      p.className = "muted";
      p.textContent = state.image ? "Click on the image." : "Open an image.";
      c.append(p);
      return;
    }
    state.result.masks.forEach((m, i) => {
      const label = document.createElement("label");
      label.className = i === state.selected ? "selected" : "";
      const input = document.createElement("input");
      input.type = "radio"; input.name = "candidate"; input.value = String(i); input.checked = i === state.selected;
      input.addEventListener("change", () => select(i));
      label.append(input, ` ${i + 1}: score ${m.score.toFixed(3)}, ${m.area} px`);
      c.append(label);
    });
  }

  // Segment everything.
  async function segmentEverything() {
    const img = state.image;
    if (!img) return;
    const body = {};
    const num = (el) => (el.value === "" ? undefined : Number(el.value));
    if (num(els.pps) !== undefined) body.points_per_side = num(els.pps);
    if (num(els.iou) !== undefined) body.pred_iou_thresh = num(els.iou);
    if (num(els.stab) !== undefined) body.stability_score_thresh = num(els.stab);
    busy(1);
    els.auto.disabled = true;
    setStatus("Segmenting everything (the encoder runs again, with every point of the grid)…");
    try {
      const res = await call("POST", `/v1/images/${img.id}/auto`, JSON.stringify(body), "application/json");
      if (!state.image || state.image.id !== img.id) return;
      // Largest first, so smaller masks are painted over larger ones.
      const recs = res.annotations.slice().sort((a, b) => b.area - a.area);
      const W = img.width, H = img.height;
      const owner = new Int32Array(W * H).fill(-1);
      const masks = recs.map((r, i) => {
        const pix = decodeRLE(r.segmentation);
        for (let j = 0; j < pix.length; j++) if (pix[j]) owner[j] = i;
        return { pix, color: palette[i % palette.length], record: r };
      });
      state.auto = { records: recs, masks, owner };
      state.result = null; state.history = []; state.prompt = { points: [], box: null }; state.hover = -1;
      draw(); renderCandidates(); renderAutoList(); updateButtons();
      setStatus(`${recs.length} masks in ${Math.round(res.timings_ms.total)} ms. Hover one to highlight it; click to start prompting again.`);
      els.stage.dataset.auto = String(recs.length);
    } catch (err) {
      setStatus("Segment everything failed: " + err.message, true);
    } finally {
      busy(-1);
      updateButtons();
    }
  }

  function renderAutoList() {
    const ul = els.autoList;
    ul.textContent = "";
    if (!state.auto) return;
    state.auto.masks.forEach((m, i) => {
      const li = document.createElement("li");
      li.tabIndex = 0;
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = `rgb(${m.color.join(",")})`;
      li.append(sw, `#${i + 1}: ${m.record.area} px, IoU ${m.record.predicted_iou.toFixed(2)}`);
      li.addEventListener("mouseenter", () => setHover(i));
      li.addEventListener("focus", () => setHover(i));
      li.addEventListener("mouseleave", () => setHover(-1));
      li.addEventListener("blur", () => setHover(-1));
      ul.append(li);
    });
  }

  function setHover(i) {
    if (!state.auto || state.hover === i) return;
    state.hover = i;
    [...els.autoList.children].forEach((li, k) => li.classList.toggle("hover", k === i));
    draw();
  }

  function download(name, blob) {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }

  function currentMask() {
    if (state.result) return state.result.masks[state.selected].pix;
    if (state.auto && state.hover >= 0) return state.auto.masks[state.hover].pix;
    return null;
  }

  function downloadMask() {
    const pix = currentMask();
    if (!pix) return;
    const W = state.image.width, H = state.image.height;
    const c = document.createElement("canvas");
    c.width = W; c.height = H;
    const ctx = c.getContext("2d");
    const data = ctx.createImageData(W, H);
    for (let i = 0; i < pix.length; i++) {
      const v = pix[i] ? 255 : 0;
      data.data[4 * i] = v; data.data[4 * i + 1] = v; data.data[4 * i + 2] = v; data.data[4 * i + 3] = 255;
    }
    ctx.putImageData(data, 0, 0);
    c.toBlob((b) => download(baseName() + "_mask.png", b), "image/png");
  }

  function baseName() { return (state.image.name || "image").replace(/\.[^.]*$/, ""); }

  // downloadCOCO writes every mask (the automatic ones and the current
  // interactive one) as a COCO annotation file.
  function downloadCOCO() {
    const img = state.image;
    if (!img) return;
    const anns = [];
    const add = (seg, area, bbox, extra) => anns.push(Object.assign({ id: anns.length + 1, image_id: 1, category_id: 1, segmentation: seg, area, bbox, iscrowd: 0 }, extra));
    if (state.auto) {
      for (const r of state.auto.records) {
        add(r.segmentation, r.area, r.bbox, { predicted_iou: r.predicted_iou, stability_score: r.stability_score, point_coords: r.point_coords });
      }
    }
    if (state.result) {
      const m = state.result.masks[state.selected];
      add(m.rle || encodeRLE(m.pix, img.width, img.height), m.area, m.bbox || [0, 0, 0, 0], { predicted_iou: m.score, prompt: clonePrompt(state.prompt) });
    }
    const coco = {
      info: { description: "sam serve", date_created: new Date().toISOString() },
      images: [{ id: 1, file_name: img.name, width: img.width, height: img.height, sam_id: img.id }],
      categories: [{ id: 1, name: "object" }],
      annotations: anns,
    };
    download(baseName() + "_masks.json", new Blob([JSON.stringify(coco)], { type: "application/json" }));
  }

  function updateButtons() {
    const has = !!state.image;
    els.undo.disabled = !state.history.length;
    els.reset.disabled = !has || (!state.prompt.points.length && !state.prompt.box);
    els.auto.disabled = !has;
    els.dlMask.disabled = !state.result && !(state.auto && state.hover >= 0);
    els.dlCoco.disabled = !state.result && !state.auto;
  }

  // Pointer: click = point, right click or alt+click = negative, drag = box.
  els.stage.addEventListener("contextmenu", (ev) => ev.preventDefault());
  els.stage.addEventListener("pointerdown", (ev) => {
    if (!state.image || ev.target === els.hint) return;
    els.stage.focus();
    const [x, y] = toImage(ev);
    state.drag = { x0: x, y0: y, x1: x, y1: y, moved: false, cx: ev.clientX, cy: ev.clientY, button: ev.button, alt: ev.altKey };
    els.stage.setPointerCapture(ev.pointerId);
  });
  els.stage.addEventListener("pointermove", (ev) => {
    if (!state.image) return;
    const [x, y] = toImage(ev);
    if (state.drag) {
      state.drag.x1 = x; state.drag.y1 = y;
      if (Math.abs(ev.clientX - state.drag.cx) + Math.abs(ev.clientY - state.drag.cy) > 6) state.drag.moved = true;
      if (state.drag.moved) drawMarks();
      return;
    }
    if (state.auto && !state.result) setHover(state.auto.owner[y * state.image.width + x]);
  });
  els.stage.addEventListener("pointerup", (ev) => {
    const d = state.drag;
    state.drag = null;
    if (!d || !state.image) return;
    if (d.moved) {
      setBox(d.x0, d.y0, d.x1, d.y1);
      return;
    }
    const negative = d.button === 2 || d.alt;
    addPoint(d.x0, d.y0, negative ? 0 : mode());
  });
  els.stage.addEventListener("pointercancel", () => { state.drag = null; if (state.image) drawMarks(); });
  els.stage.addEventListener("pointerleave", () => { if (state.auto && !state.drag) setHover(-1); });

  function mode() { return Number(document.querySelector('input[name="mode"]:checked').value); }
  function setMode(v) { document.querySelector(`input[name="mode"][value="${v}"]`).checked = true; }

  // Keyboard: on the image, arrows move a cursor and Enter/Space/b act at
  // it; the other keys work anywhere but in a text field.
  els.stage.addEventListener("focus", () => { if (state.image) drawMarks(); });
  els.stage.addEventListener("blur", () => { if (state.image) drawMarks(); });
  document.addEventListener("keydown", (ev) => {
    if (ev.target instanceof HTMLInputElement && (ev.target.type === "number" || ev.target.type === "password")) return;
    if (ev.ctrlKey || ev.metaKey) {
      if (ev.key === "z") { ev.preventDefault(); undo(); }
      return;
    }
    const onStage = document.activeElement === els.stage && state.image && state.cursor;
    if (onStage) {
      const W = state.image.width, H = state.image.height;
      const step = Math.max(1, Math.round(Math.max(W, H) / 100)) * (ev.shiftKey ? 5 : 1);
      const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
      if (moves[ev.key]) {
        ev.preventDefault();
        state.cursor.x = Math.min(W - 1, Math.max(0, state.cursor.x + moves[ev.key][0]));
        state.cursor.y = Math.min(H - 1, Math.max(0, state.cursor.y + moves[ev.key][1]));
        drawMarks();
        return;
      }
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        addPoint(state.cursor.x, state.cursor.y, ev.shiftKey ? 0 : mode());
        return;
      }
      if (ev.key === "b") {
        if (!state.boxStart) { state.boxStart = [state.cursor.x, state.cursor.y]; drawMarks(); setStatus("Box: move to the other corner and press b again (Escape cancels)."); }
        else { const s = state.boxStart; state.boxStart = null; setBox(s[0], s[1], state.cursor.x, state.cursor.y); }
        return;
      }
      if (ev.key === "Escape" && state.boxStart) { state.boxStart = null; drawMarks(); setStatus("Box cancelled."); return; }
    }
    switch (ev.key) {
      case "p": setMode(1); break;
      case "n": setMode(0); break;
      case "z": undo(); break;
      case "r": reset(); break;
      case "a": if (state.image) segmentEverything(); break;
      case "d": downloadMask(); break;
      case "o": els.file.click(); break;
      case "1": case "2": case "3": select(Number(ev.key) - 1); break;
      default: return;
    }
  });

  // Opening: file picker, drag and drop, paste.
  els.open.addEventListener("click", () => els.file.click());
  els.file.addEventListener("change", () => { openFile(els.file.files[0]); els.file.value = ""; });
  els.stage.addEventListener("dragover", (ev) => { ev.preventDefault(); els.stage.classList.add("dragover"); });
  els.stage.addEventListener("dragleave", () => els.stage.classList.remove("dragover"));
  els.stage.addEventListener("drop", (ev) => {
    ev.preventDefault();
    els.stage.classList.remove("dragover");
    const f = [...ev.dataTransfer.files].find((x) => x.type.startsWith("image/")) || ev.dataTransfer.files[0];
    openFile(f);
  });
  document.addEventListener("paste", (ev) => {
    const item = [...(ev.clipboardData || {}).items || []].find((i) => i.type.startsWith("image/"));
    if (item) { ev.preventDefault(); openFile(item.getAsFile()); }
  });
  els.undo.addEventListener("click", undo);
  els.reset.addEventListener("click", reset);
  els.auto.addEventListener("click", segmentEverything);
  els.dlMask.addEventListener("click", downloadMask);
  els.dlCoco.addEventListener("click", downloadCOCO);
  els.token.addEventListener("change", () => {
    token = els.token.value.trim();
    sessionStorage.setItem("sam-token", token);
    loadModel();
  });

  async function loadModel() {
    try {
      const res = await call("GET", "/v1/models");
      const m = res.models[0];
      els.model.textContent = `${m.name || "model"} · ${m.backend} · encoder ${m.encoder_identity.slice(0, 12)}`;
      const d = m.auto_defaults;
      state.autoDefaults = d;
      els.pps.placeholder = d.points_per_side; els.iou.placeholder = d.pred_iou_thresh; els.stab.placeholder = d.stability_score_thresh;
      els.tokenRow.hidden = !token;
    } catch (err) {
      els.model.textContent = "";
      if (err.status !== 401) setStatus("The server did not answer: " + err.message, true);
      else setStatus("This server needs an API token.", true);
    }
  }
  loadModel();
  updateButtons();

  // What the browser test reads: the last prompt sent and the mask shown.
  window.samApp = {
    state,
    get lastRequest() { return state.lastRequest; },
    get imageId() { return state.image && state.image.id; },
    // clientPoint is where on the page the centre of image pixel (x, y) is.
    clientPoint(x, y) {
      const r = els.marks.getBoundingClientRect();
      return [r.left + (x + 0.5) * r.width / state.image.width, r.top + (y + 0.5) * r.height / state.image.height];
    },
    // shownMask reads the mask layer back: 1 where it is painted.
    shownMask() {
      const W = state.image.width, H = state.image.height;
      const d = els.mask.getContext("2d").getImageData(0, 0, W, H).data;
      const out = new Array(W * H);
      for (let i = 0; i < W * H; i++) out[i] = d[4 * i + 3] > 0 ? 1 : 0;
      return out.join("");
    },
    decodeRLE, encodeRLE,
  };
})();
