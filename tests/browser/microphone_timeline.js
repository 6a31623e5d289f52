// Added to a page before its scripts run: records what happens to its microphone recording, in
// `window.__microphone`, so a test can tell a recording that started late from one that lost
// frames. Times are `performance.now()` milliseconds.
//   requested / granted     getUserMedia called / its stream handed over
//   recorderStart           MediaRecorder.start called (the page's recording begins)
//   recorderStop            MediaRecorder.stop called
//   recordedSeconds         length of the audio the recorder handed over, decoded
//   speechOnsetSeconds      where in that audio the first loud 20 ms frame is (the fake
//                           microphone's file starts with 0.3 s of silence before its sentence)
//   speechSeconds           how many seconds of 20 ms frames are loud (the sentence alone is
//                           about 3 s; much less means the recording missed part of it)
(() => {
  const timeline = (window.__microphone = {});
  const now = () => performance.now();
  const getUserMedia = MediaDevices.prototype.getUserMedia;
  MediaDevices.prototype.getUserMedia = function (...args) {
    timeline.requested = now();
    return getUserMedia.apply(this, args).then((stream) => {
      timeline.granted = now();
      return stream;
    });
  };
  const start = MediaRecorder.prototype.start;
  MediaRecorder.prototype.start = function (...args) {
    timeline.recorderStart = now();
    this.addEventListener('dataavailable', (event) => measure(event.data));
    return start.apply(this, args);
  };
  const stop = MediaRecorder.prototype.stop;
  MediaRecorder.prototype.stop = function (...args) {
    timeline.recorderStop = now();
    return stop.apply(this, args);
  };
  async function measure(blob) {
    const decoded = await new OfflineAudioContext(1, 1, 48_000).decodeAudioData(await blob.arrayBuffer());
    const samples = decoded.getChannelData(0);
    const frame = Math.round(decoded.sampleRate * 0.02);
    const loud = [];
    for (let i = 0; i + frame <= samples.length; i += frame) {
      let energy = 0;
      for (let j = i; j < i + frame; j++) energy += samples[j] * samples[j];
      loud.push(Math.sqrt(energy / frame) > 0.01);
    }
    timeline.recordedSeconds = decoded.duration;
    timeline.speechOnsetSeconds = loud.indexOf(true) * 0.02;
    timeline.speechSeconds = loud.filter(Boolean).length * 0.02;
  }
})();
