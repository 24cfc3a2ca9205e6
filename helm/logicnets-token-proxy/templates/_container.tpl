{{/*
The sidecar container, its environment and its probes.

In a pod spec, the whole `initContainers:` field comes from one template that merges the app's own
init containers with the sidecar (so the pod never gets two `initContainers:` keys), and the
sidecar is appended to `containers:`; exactly one of the two holds it, following
tokenProxy.nativeSidecar:
  {{- include "logicnets-token-proxy.initContainersField" (dict "context" . "initContainers" .Values.initContainers) | nindent 2 }}
  containers:
    - name: app
      ...
    {{- include "logicnets-token-proxy.containers" . | nindent 4 }}
*/}}

{{/*
The pod's whole `initContainers:` field: the native sidecar first (so the app's init containers
can already call LogicNets through it), then the app's own init containers in their order; nothing
at all when both are empty. Takes a dict: "context" (the chart's root context) and "initContainers"
(the app's list, may be empty or nil). Use it at the indentation of the pod spec's fields.
*/}}
{{- define "logicnets-token-proxy.initContainersField" -}}
{{- $sidecar := include "logicnets-token-proxy.initContainers" .context -}}
{{- $own := .initContainers | default list -}}
{{- if or $sidecar $own -}}
initContainers:
{{- with $sidecar }}
{{ . }}
{{- end }}
{{- with $own }}
{{ toYaml . }}
{{- end }}
{{- end -}}
{{- end -}}

{{/* The sidecar as a one-item list for `initContainers:` when nativeSidecar is true; empty otherwise. */}}
{{- define "logicnets-token-proxy.initContainers" -}}
{{- if .Values.tokenProxy.nativeSidecar -}}
{{- include "logicnets-token-proxy.container" . -}}
{{- end -}}
{{- end -}}

{{/* The sidecar as a one-item list for `containers:` when nativeSidecar is false; empty otherwise. */}}
{{- define "logicnets-token-proxy.containers" -}}
{{- if not .Values.tokenProxy.nativeSidecar -}}
{{- include "logicnets-token-proxy.container" . -}}
{{- end -}}
{{- end -}}

{{/*
The sidecar container as a one-item list. With nativeSidecar it carries `restartPolicy: Always`
and belongs under initContainers (first, so it runs before other init containers too); without,
under containers. Fails the render with an operator's sentence when a required value is missing.
*/}}
{{- define "logicnets-token-proxy.container" -}}
{{- include "logicnets-token-proxy.validate" . -}}
- name: {{ .Values.tokenProxy.containerName }}
  image: {{ include "logicnets-token-proxy.image" . | quote }}
  imagePullPolicy: {{ .Values.tokenProxy.image.pullPolicy }}
  {{- if .Values.tokenProxy.nativeSidecar }}
  restartPolicy: Always
  {{- end }}
  ports:
    - name: proxy-admin
      containerPort: {{ .Values.tokenProxy.ports.admin }}
      protocol: TCP
  env:
    {{- include "logicnets-token-proxy.env" . | nindent 4 }}
  {{- include "logicnets-token-proxy.probes" . | nindent 2 }}
  resources:
    {{- toYaml .Values.tokenProxy.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.tokenProxy.securityContext | nindent 4 }}
  volumeMounts:
    {{- include "logicnets-token-proxy.volumeMounts" . | nindent 4 }}
  terminationMessagePolicy: FallbackToLogsOnError
{{- end -}}

{{/* The sidecar's environment: what the chart sets, then tokenProxy.extraEnv (whose names may not repeat the chart's). */}}
{{- define "logicnets-token-proxy.env" -}}
{{- include "logicnets-token-proxy.chartEnv" . -}}
{{- with .Values.tokenProxy.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
The environment the chart sets itself. The key is passed as a file path
(LOGICNETS_PRIVATE_KEY_FILE), never as a value. LISTEN_HOST stays on loopback: only the pod's own
containers may use the proxy.
*/}}
{{- define "logicnets-token-proxy.chartEnv" -}}
- name: LISTEN_HOST
  value: "127.0.0.1"
- name: LISTEN_PORT
  value: {{ .Values.tokenProxy.ports.proxy | toString | quote }}
- name: ADMIN_PORT
  value: {{ .Values.tokenProxy.ports.admin | toString | quote }}
- name: LOG_LEVEL
  value: {{ .Values.tokenProxy.logLevel | quote }}
- name: UPSTREAM_TIMEOUT
  value: {{ include "logicnets-token-proxy.plainNumber" .Values.tokenProxy.upstreamTimeout | quote }}
- name: SHUTDOWN_TIMEOUT
  value: {{ include "logicnets-token-proxy.plainNumber" .Values.tokenProxy.shutdownTimeout | quote }}
{{- if not .Values.tokenProxy.nativeSidecar }}
- name: SHUTDOWN_DELAY
  value: {{ include "logicnets-token-proxy.plainNumber" .Values.tokenProxy.legacyShutdownDelay | quote }}
{{- end }}
- name: READINESS_REQUIRE_TOKEN
  value: {{ .Values.tokenProxy.readinessRequireToken | toString | quote }}
{{- with (include "logicnets-token-proxy.shutdownTokenFile" .) }}
- name: ADMIN_SHUTDOWN_TOKEN_FILE
  value: {{ . | quote }}
{{- end }}
{{- if .Values.tokenProxy.config }}
- name: CONFIG_FILE
  value: {{ printf "%s/config.yaml" (.Values.tokenProxy.configMountPath | trimSuffix "/") | quote }}
{{- end }}
{{- if not (include "logicnets-token-proxy.fileUpstreams" .) }}
- name: LOGICNETS_URL
  value: {{ .Values.tokenProxy.upstream.url | quote }}
- name: LOGICNETS_CLIENT_ID
  value: {{ .Values.tokenProxy.upstream.clientId | quote }}
- name: LOGICNETS_PRIVATE_KEY_FILE
  value: {{ include "logicnets-token-proxy.keyFile" . | quote }}
{{- with .Values.tokenProxy.upstream.clientIssuer }}
- name: LOGICNETS_CLIENT_ISSUER
  value: {{ . | quote }}
{{- end }}
{{- with .Values.tokenProxy.upstream.name }}
- name: LOGICNETS_NAME
  value: {{ . | quote }}
{{- end }}
{{- with .Values.tokenProxy.upstream.keyId }}
- name: LOGICNETS_KEY_ID
  value: {{ . | quote }}
{{- end }}
{{- with .Values.tokenProxy.upstream.tokenUrl }}
- name: LOGICNETS_TOKEN_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.tokenProxy.upstream.tokenAudience }}
- name: LOGICNETS_TOKEN_AUDIENCE
  value: {{ . | quote }}
{{- end }}
{{- with .Values.tokenProxy.upstream.tokenMethod }}
- name: LOGICNETS_TOKEN_METHOD
  value: {{ . | quote }}
{{- end }}
{{- with .Values.tokenProxy.upstream.tokenScope }}
- name: LOGICNETS_TOKEN_SCOPE
  value: {{ . | quote }}
{{- end }}
{{- with .Values.tokenProxy.upstream.assertionTtl }}
- name: LOGICNETS_ASSERTION_TTL
  value: {{ . | toString | quote }}
{{- end }}
{{- with .Values.tokenProxy.upstream.assertionType }}
- name: LOGICNETS_ASSERTION_TYP
  value: {{ . | quote }}
{{- end }}
{{- with .Values.tokenProxy.upstream.tokenParams }}
- name: LOGICNETS_TOKEN_PARAMS
  value: {{ . | quote }}
{{- end }}
{{- with (include "logicnets-token-proxy.caFile" .) }}
- name: LOGICNETS_CA_FILE
  value: {{ . | quote }}
{{- end }}
{{- with (include "logicnets-token-proxy.clientCertFile" .) }}
- name: LOGICNETS_CLIENT_CERT_FILE
  value: {{ . | quote }}
- name: LOGICNETS_CLIENT_KEY_FILE
  value: {{ include "logicnets-token-proxy.clientKeyFile" $ | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
Probes on the admin port (the kubelet probes the pod IP, so the admin port listens on all
interfaces): startup (gates the app when native) and liveness on /livez, readiness on /readyz.
*/}}
{{- define "logicnets-token-proxy.probes" -}}
startupProbe:
  httpGet:
    path: {{ .Values.tokenProxy.probes.startup.path }}
    port: {{ .Values.tokenProxy.ports.admin }}
  periodSeconds: {{ .Values.tokenProxy.probes.startup.periodSeconds }}
  failureThreshold: {{ .Values.tokenProxy.probes.startup.failureThreshold }}
  timeoutSeconds: {{ .Values.tokenProxy.probes.startup.timeoutSeconds }}
livenessProbe:
  httpGet:
    path: /livez
    port: {{ .Values.tokenProxy.ports.admin }}
  periodSeconds: {{ .Values.tokenProxy.probes.liveness.periodSeconds }}
  failureThreshold: {{ .Values.tokenProxy.probes.liveness.failureThreshold }}
  timeoutSeconds: {{ .Values.tokenProxy.probes.liveness.timeoutSeconds }}
readinessProbe:
  httpGet:
    path: /readyz
    port: {{ .Values.tokenProxy.ports.admin }}
  periodSeconds: {{ .Values.tokenProxy.probes.readiness.periodSeconds }}
  failureThreshold: {{ .Values.tokenProxy.probes.readiness.failureThreshold }}
  timeoutSeconds: {{ .Values.tokenProxy.probes.readiness.timeoutSeconds }}
{{- end -}}

{{/*
A number as the sidecar reads it: Helm holds values as float64 and `toString` writes 1000000 as
"1e+06", which the sidecar's strict settings refuse. Whole numbers are written as integers.
*/}}
{{- define "logicnets-token-proxy.plainNumber" -}}
{{- if eq (float64 .) (float64 (int64 .)) -}}
{{- int64 . -}}
{{- else -}}
{{- . -}}
{{- end -}}
{{- end -}}
