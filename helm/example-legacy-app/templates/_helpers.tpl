{{/* Chart name, overridable. */}}
{{- define "example-legacy-app.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name of the release's objects. */}}
{{- define "example-legacy-app.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Selector labels (never change them on an existing release). */}}
{{- define "example-legacy-app.selectorLabels" -}}
app.kubernetes.io/name: {{ include "example-legacy-app.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Recommended labels (the templates add app.kubernetes.io/component). */}}
{{- define "example-legacy-app.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "example-legacy-app.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: {{ include "example-legacy-app.name" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/*
The URL the legacy app calls.
gateway: the sidecar as if it were LogicNets, http://127.0.0.1:<proxy port>/<company><apiPath>.
forward: the LogicNets URL itself with http:// (the sidecar switches to https), sent via HTTP_PROXY.
*/}}
{{- define "example-legacy-app.apiUrl" -}}
{{- $upstream := urlParse (required "tokenProxy.upstream.url is required: the base URL of the LogicNets installation including the company, e.g. https://lua5.logicnets.local/logicnets" .Values.tokenProxy.upstream.url) -}}
{{- $company := get $upstream "path" | trimSuffix "/" -}}
{{- if eq .Values.mode "forward" -}}
{{- printf "http://%s%s%s" (get $upstream "host") $company .Values.app.apiPath -}}
{{- else -}}
{{- printf "http://127.0.0.1:%v%s%s" .Values.tokenProxy.ports.proxy $company .Values.app.apiPath -}}
{{- end -}}
{{- end -}}

{{/* The sidecar's admin base URL, as the app reaches it over the pod's loopback. */}}
{{- define "example-legacy-app.adminUrl" -}}
{{- printf "http://127.0.0.1:%v" .Values.tokenProxy.ports.admin -}}
{{- end -}}

{{/* The app container's environment: the URL to call, and in forward mode the proxy variables. */}}
{{- define "example-legacy-app.env" -}}
- name: API_URL
  value: {{ include "example-legacy-app.apiUrl" . | quote }}
- name: SIDECAR_ADMIN_URL
  value: {{ include "example-legacy-app.adminUrl" . | quote }}
- name: INTERVAL_SECONDS
  value: {{ .Values.app.intervalSeconds | toString | quote }}
{{- if eq .Values.mode "forward" }}
{{- $proxy := printf "http://127.0.0.1:%v" .Values.tokenProxy.ports.proxy }}
{{- $noProxy := printf "localhost,127.0.0.1,::1,.svc,.cluster.local,.%s" .Release.Namespace }}
{{- if .Values.app.extraNoProxy }}
{{- $noProxy = printf "%s,%s" $noProxy .Values.app.extraNoProxy }}
{{- end }}
{{- /* Both spellings: curl and many tools read only the lower-case http_proxy, others only HTTP_PROXY. */}}
- name: HTTP_PROXY
  value: {{ $proxy | quote }}
- name: http_proxy
  value: {{ $proxy | quote }}
- name: NO_PROXY
  value: {{ $noProxy | quote }}
- name: no_proxy
  value: {{ $noProxy | quote }}
{{- end }}
{{- end -}}

{{/*
Shell lines that wait until the sidecar is ready. Needed only for a legacy (non-native) sidecar,
which starts together with the app; a native sidecar has passed its startup probe before the app
starts. Bounded: gives up after 60 s and lets the first call show the error.
*/}}
{{- define "example-legacy-app.waitForSidecar" -}}
{{- if not .Values.tokenProxy.nativeSidecar -}}
i=0
until curl -fsS -o /dev/null "$SIDECAR_ADMIN_URL/readyz"; do
  i=$((i + 1)); [ "$i" -ge 60 ] && { echo "sidecar not ready after 60 s" >&2; break; }
  sleep 1
done
{{- end -}}
{{- end -}}

{{/* Pod-level parts shared by the Deployment and the Job. */}}
{{- define "example-legacy-app.podSpecCommon" -}}
automountServiceAccountToken: false
enableServiceLinks: false
terminationGracePeriodSeconds: {{ max (int .Values.terminationGracePeriodSeconds) (include "logicnets-token-proxy.minTerminationGracePeriodSeconds" . | int) }}
{{- with .Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  {{- include "logicnets-token-proxy.volumes" . | nindent 2 }}
{{- end -}}
