// Server result page: wait for the job, then render its Analysis beside the uploaded video.
(async function () {
  const id = JOB_ID;
  const headers = localStorage.moodlensKey ? { "X-API-Key": localStorage.moodlensKey } : {};
  const notes = document.getElementById("notes");
  let job;
  for (;;) {
    job = await (await fetch(`/v1/analyses/${id}`, { headers })).json();
    if (job.status === "done") break;
    if (job.status === "failed" || job.error) { notes.textContent = `Analysis failed: ${job.error}`; notes.className = "error"; return; }
    notes.textContent = `${job.filename}: ${job.status} (${Math.round(100 * job.progress)}%)`;
    await new Promise((r) => setTimeout(r, 700));
  }
  const analysis = await (await fetch(`/v1/analyses/${id}/result`, { headers })).json();
  render(analysis, job.media_url);  // signed when the server has an API key: the key stays out of URLs
  document.getElementById("title").textContent = job.filename;  // the upload's own name, not the stored one
  document.body.dataset.ready = "1";
})();
