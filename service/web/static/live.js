// Night page: asks every data-poll-ms for the night's changing part; 204 = nothing new archived since data-stamp.
(function () {
  const live = document.getElementById("live");
  if (!live) return;
  const every = Number(live.dataset.pollMs) || 1000;
  async function poll() {
    try {
      const url = live.dataset.url + "?stamp=" + encodeURIComponent(live.dataset.stamp) + live.dataset.query;
      const response = await fetch(url, {headers: {"Accept": "text/html"}});
      if (response.status === 200) {
        live.innerHTML = await response.text();
        const counts = document.getElementById("counts");
        if (counts) live.dataset.stamp = counts.dataset.stamp;
      }
    } catch (err) { /* the server restarting: try again next time */ }
    setTimeout(poll, every);
  }
  setTimeout(poll, every);
})();
