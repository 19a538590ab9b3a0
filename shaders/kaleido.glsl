// kaleido: fold the image into mirrored wedges around a turning centre.
uniform sampler2D u_input;
uniform vec2 u_resolution;
uniform float u_time;
uniform float u_segments;  // 6 [1, 24] mirrored wedges
uniform float u_rotate;    // 0 [-6.2832, 6.2832] turn, radians
uniform float u_spin;      // 0.05 [-2, 2] turning speed, turns per second
uniform float u_zoom;      // 1 [0.25, 4] zoom into the source
uniform float u_mix;       // 1 [0, 1] 0 dry, 1 full kaleidoscope

const float TAU = 6.28318530718;

void main() {
    float aspect = u_resolution.x / u_resolution.y;
    vec2 p = (v_uv - 0.5) * vec2(aspect, 1.0);
    float r = length(p) / u_zoom;
    float wedge = TAU / max(floor(u_segments + 0.5), 1.0);
    float a = atan(p.y, p.x) + u_rotate + u_time * u_spin * TAU;
    a = mod(a, wedge);
    a = min(a, wedge - a);  // mirror every other half-wedge: no seams
    vec2 q = vec2(cos(a), sin(a)) * r / vec2(aspect, 1.0) + 0.5;
    q = 1.0 - abs(1.0 - mod(q, 2.0));  // mirrored repeat: no seams in far corners
    vec3 folded = texture(u_input, q).rgb;
    f_color = vec4(mix(texture(u_input, v_uv).rgb, folded, u_mix), 1.0);
}
